//! The stylesheet's colour pairs, checked against WCAG 2.2's contrast minimums: 4.5:1 for
//! text (1.4.3), 3:1 for the focus ring against whatever it is drawn on (1.4.11). The pairs
//! are read from `console.css`'s custom properties, so a colour changed there is checked
//! here; a pair is listed where the stylesheet puts one on the other.

/// A custom property's `#rrggbb` value in the stylesheet.
fn colour(css: &str, name: &str) -> [u8; 3] {
    let key = format!("--{name}:");
    let at = css
        .find(&key)
        .unwrap_or_else(|| panic!("console.css defines no {key}"));
    let value = css[at + key.len()..].trim_start();
    let hex = value
        .strip_prefix('#')
        .and_then(|v| v.get(..6))
        .unwrap_or_else(|| panic!("{key} is not #rrggbb"));
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex");
    [byte(0), byte(2), byte(4)]
}

/// WCAG's relative luminance.
fn luminance([r, g, b]: [u8; 3]) -> f64 {
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
}

fn ratio(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (hi, lo) = {
        let (x, y) = (luminance(a), luminance(b));
        if x > y { (x, y) } else { (y, x) }
    };
    (hi + 0.05) / (lo + 0.05)
}

#[test]
fn text_and_focus_colours_keep_wcag_contrast() {
    let css = include_str!("../../assets/console/console.css");
    let text = [
        ("fg", "bg"),
        ("fg", "panel"),
        ("muted", "bg"),
        ("muted", "panel"),
        ("accent", "bg"),
        ("accent-fg", "accent"),
        ("ok", "ok-bg"),
        ("bad", "bad-bg"),
        ("warn", "warn-bg"),
        ("info", "info-bg"),
        ("bg", "header"),
        ("bg", "bad"),
    ];
    let focus = [("focus", "bg"), ("focus", "panel"), ("focus", "header")];
    let mut short = Vec::new();
    for (pairs, min) in [(&text[..], 4.5), (&focus[..], 3.0)] {
        for (fg, bg) in pairs {
            let r = ratio(colour(css, fg), colour(css, bg));
            if r < min {
                short.push(format!("--{fg} on --{bg}: {r:.2}:1 < {min}:1"));
            }
        }
    }
    assert!(short.is_empty(), "too little contrast: {short:?}");
}

#[test]
fn the_ratio_is_wcags() {
    // Black on white is the largest contrast there is; a colour on itself the least.
    assert!((ratio([0, 0, 0], [255, 255, 255]) - 21.0).abs() < 1e-9);
    assert!((ratio([0x77, 0x77, 0x77], [0x77, 0x77, 0x77]) - 1.0).abs() < 1e-9);
    // The old focus ring (#f5a623 on white, about 2:1) falls short of 3:1.
    assert!(ratio([0xf5, 0xa6, 0x23], [255, 255, 255]) < 3.0);
}
