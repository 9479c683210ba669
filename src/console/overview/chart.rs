//! The overview's chart, drawn by our own code: per minute of the last hour, events in as
//! bars, deliveries out (delivered, and dead when any) as lines, with axis labels. Pure
//! geometry in the SVG's own units; the template writes the elements, so every text is
//! escaped like the rest of the page.

use crate::telemetry::recent::{Activity, MinuteTotals};

/// The SVG's coordinate system: CSS scales it to the page's width.
pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 240;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 36.0;

pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    /// What a pointer over it shows: the minute and its numbers.
    pub label: String,
}

pub struct Tick {
    pub x: String,
    pub y: String,
    pub label: String,
    /// `start`, `middle` or `end`.
    pub anchor: &'static str,
}

pub struct Chart {
    pub bars: Vec<Bar>,
    /// `points` of the delivered line.
    pub delivered: String,
    /// `points` of the dead line, empty when nothing died.
    pub dead: String,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    /// The plot's left and right edges and its baseline, for the axis lines.
    pub left: String,
    pub right: String,
    pub base: String,
}

/// The smallest of 1, 2, 5, 10, 20, 50, ... at or above `v`: a scale a person reads at once.
pub fn nice_max(v: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let n = step.saturating_mul(m);
            if n >= v || n == u64::MAX {
                return n;
            }
        }
        step = step.saturating_mul(10);
    }
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

/// `HH:MM` of a Unix millisecond time, UTC.
pub fn clock_minute(ms: u64) -> String {
    let secs_of_day = (ms / 1000) % 86_400;
    format!("{:02}:{:02}", secs_of_day / 3600, (secs_of_day % 3600) / 60)
}

/// The chart of `activity`'s minutes.
pub fn draw(activity: &Activity) -> Chart {
    let minutes: &[MinuteTotals] = &activity.minutes;
    let peak = minutes
        .iter()
        .map(|m| m.accepted.max(m.delivered).max(m.dead))
        .max()
        .unwrap_or(0);
    let top = nice_max(peak.max(1));
    let plot_w = f64::from(WIDTH) - LEFT - RIGHT;
    let plot_h = f64::from(HEIGHT) - TOP - BOTTOM;
    let base = TOP + plot_h;
    let slot = plot_w / minutes.len().max(1) as f64;
    let y = |v: u64| base - plot_h * v as f64 / top as f64;
    let centre = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let bars = minutes
        .iter()
        .enumerate()
        .filter(|(_, m)| m.accepted > 0)
        .map(|(i, m)| {
            let at = activity.first_minute_ms + i as u64 * 60_000;
            Bar {
                x: num(LEFT + slot * i as f64 + slot * 0.15),
                y: num(y(m.accepted)),
                width: num(slot * 0.7),
                height: num(base - y(m.accepted)),
                label: format!(
                    "{}: {} in, {} delivered, {} dead",
                    clock_minute(at),
                    m.accepted,
                    m.delivered,
                    m.dead
                ),
            }
        })
        .collect();
    let line = |value: fn(&MinuteTotals) -> u64| {
        minutes
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{},{}", num(centre(i)), num(y(value(m)))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let any_dead = minutes.iter().any(|m| m.dead > 0);
    let mut y_values = vec![0, top];
    if top.is_multiple_of(2) {
        y_values.insert(1, top / 2);
    }
    let y_ticks = y_values
        .into_iter()
        .map(|v| Tick {
            x: num(LEFT - 8.0),
            y: num(y(v)),
            label: v.to_string(),
            anchor: "end",
        })
        .collect();
    let n = minutes.len();
    let x_ticks = [
        (0, "−60 min"),
        (15, "−45"),
        (30, "−30"),
        (45, "−15"),
        (n, "now"),
    ]
    .into_iter()
    .map(|(i, label)| Tick {
        x: num(LEFT + slot * i as f64),
        y: num(f64::from(HEIGHT) - 10.0),
        label: label.to_string(),
        anchor: match i {
            0 => "start",
            i if i == n => "end",
            _ => "middle",
        },
    })
    .collect();
    Chart {
        bars,
        delivered: line(|m| m.delivered),
        dead: if any_dead {
            line(|m| m.dead)
        } else {
            String::new()
        },
        y_ticks,
        x_ticks,
        left: num(LEFT),
        right: num(LEFT + plot_w),
        base: num(base),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn activity(minutes: Vec<MinuteTotals>) -> Activity {
        Activity {
            since_ms: 0,
            first_minute_ms: 1_800_000_000_000,
            minutes,
            endpoints: BTreeMap::new(),
        }
    }

    #[test]
    fn scales_are_round_numbers() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(1), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(200), 200);
        assert_eq!(nice_max(201), 500);
        assert_eq!(nice_max(u64::MAX), u64::MAX);
    }

    #[test]
    fn bars_stand_on_the_baseline_scaled_to_the_peak() {
        let mut minutes = vec![MinuteTotals::default(); 60];
        minutes[0].accepted = 10;
        minutes[59].accepted = 5;
        minutes[59].delivered = 4;
        let c = draw(&activity(minutes));
        assert_eq!(c.bars.len(), 2, "empty minutes draw no bar");
        let base: f64 = c.base.parse().expect("number");
        let full: f64 = c.bars[0].height.parse().expect("number");
        let half: f64 = c.bars[1].height.parse().expect("number");
        assert!((full - (base - TOP)).abs() < 0.2, "the peak fills the plot");
        assert!((full / 2.0 - half).abs() < 0.2);
        assert!(c.bars[1].label.starts_with("08:59: 5 in, 4 delivered"));
        let labels: Vec<&str> = c.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0", "5", "10"]);
        assert_eq!(c.delivered.split(' ').count(), 60);
        assert!(c.dead.is_empty(), "no dead line without deaths");
        assert_eq!(c.x_ticks.last().map(|t| t.label.as_str()), Some("now"));
    }

    #[test]
    fn an_empty_hour_draws_axes_only() {
        let c = draw(&activity(vec![MinuteTotals::default(); 60]));
        assert!(c.bars.is_empty());
        let labels: Vec<&str> = c.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0", "1"]);
    }

    #[test]
    fn minutes_read_as_utc_clock_times() {
        assert_eq!(clock_minute(1_800_000_000_000), "08:00");
        assert_eq!(
            clock_minute(1_800_000_000_000 + 13 * 3_600_000 + 7 * 60_000),
            "21:07"
        );
    }
}
