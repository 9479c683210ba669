//! The power-cut disk's own tests: what survives a cut, a torn write and a lying fsync.

use super::*;

const ALL: (Bound<u64>, Bound<u64>) = (Bound::Unbounded, Bound::Unbounded);

fn written(cut: &PowerCut) -> PowerCutBackend {
    let b = cut.backend();
    b.set_len(3 * PAGE).expect("disk");
    b.write(0, &[1; PAGE as usize]).expect("disk");
    b.sync_data().expect("disk");
    b.write(PAGE, &[2; 2 * PAGE as usize]).expect("disk");
    b
}

fn image(cut: &PowerCut) -> Vec<u8> {
    let b = cut.backend();
    let mut out = vec![0; to_usize(b.len().expect("disk"))];
    b.read(0, &mut out).expect("disk");
    out
}

#[test]
fn reads_see_unsynced_writes_and_a_cut_drops_them() {
    let cut = PowerCut::new();
    let b = written(&cut);
    let mut page = vec![0; PAGE as usize];
    b.read(PAGE, &mut page).expect("disk");
    assert_eq!(page, vec![2; PAGE as usize]);
    let report = cut.cut(Cut::DropUnsynced);
    assert_eq!(report.unsynced, 1);
    assert!(b.read(0, &mut page).is_err(), "the old process is gone");
    let after = image(&cut);
    assert_eq!(after.len(), 3 * PAGE as usize);
    assert!(after[..PAGE as usize].iter().all(|&x| x == 1));
    assert!(after[PAGE as usize..].iter().all(|&x| x == 0));
}

#[test]
fn a_torn_write_keeps_whole_pages_before_its_tear() {
    let cut = PowerCut::new();
    let _b = written(&cut);
    let report = cut.cut(Cut::Torn { keep: 0, tear: 1 });
    assert_eq!(report.torn, Some((PAGE, 2 * PAGE as usize, PAGE as usize)));
    let after = image(&cut);
    assert!(
        after[PAGE as usize..2 * PAGE as usize]
            .iter()
            .all(|&x| x == 2)
    );
    assert!(after[2 * PAGE as usize..].iter().all(|&x| x == 0));
}

#[test]
fn the_unsynced_length_change_is_lost_too() {
    let cut = PowerCut::new();
    let b = cut.backend();
    b.set_len(PAGE).expect("disk");
    cut.cut(Cut::DropUnsynced);
    assert_eq!(cut.backend().len().expect("disk"), 0);
}

#[test]
fn the_fuse_fails_everything_after_it_and_changes_nothing() {
    let cut = PowerCut::new();
    let b = cut.backend();
    cut.fail_after(1);
    b.set_len(PAGE).expect("disk");
    assert!(b.write(0, &[7; 8]).is_err());
    assert!(cut.is_off());
    assert!(b.sync_data().is_err());
    let mut byte = [0; 1];
    b.read(0, &mut byte).expect("disk");
    assert_eq!(byte, [0], "the failed write changed nothing");
    cut.cut(Cut::Torn { keep: 5, tear: 5 });
    assert_eq!(
        cut.backend().len().expect("disk"),
        PAGE,
        "kept the one change made"
    );
}

#[test]
fn failing_at_a_sync_leaves_what_was_written_unsynced() {
    let cut = PowerCut::new();
    let b = cut.backend();
    cut.fail_at_sync(1);
    b.set_len(PAGE).expect("disk");
    b.sync_data().expect("disk");
    b.write(0, &[5; 8]).expect("disk");
    assert!(b.sync_data().is_err());
    assert!(cut.is_off());
    assert!(b.write(8, &[5; 8]).is_err());
    assert_eq!(cut.stats().unsynced, 1);
    let report = cut.cut(Cut::Torn {
        keep: usize::MAX,
        tear: 0,
    });
    assert_eq!((report.unsynced, report.landed), (1, 1));
    assert_eq!(&image(&cut)[..9], &[5, 5, 5, 5, 5, 5, 5, 5, 0]);
}

#[test]
fn a_lying_sync_lands_and_reports_an_error() {
    let cut = PowerCut::new();
    let b = cut.backend();
    b.set_len(PAGE).expect("disk");
    b.write(0, &[9; 4]).expect("disk");
    cut.lie_on_sync(0);
    assert!(b.sync_data().is_err());
    assert!(!cut.armed());
    cut.cut(Cut::DropUnsynced);
    assert_eq!(&image(&cut)[..4], &[9; 4]);
}

#[test]
fn a_lost_sync_is_read_back_until_the_power_goes() {
    let cut = PowerCut::new();
    let b = cut.backend();
    b.set_len(PAGE).expect("disk");
    b.sync_data().expect("disk");
    b.write(0, &[9; 4]).expect("disk");
    cut.lose_on_sync(0);
    assert!(b.sync_data().is_err());
    assert_eq!(cut.stats().unsynced, 0, "nothing left to sync");
    assert_eq!(&image(&cut)[..4], &[9; 4], "the page cache still shows it");
    cut.cut(Cut::Torn {
        keep: usize::MAX,
        tear: 0,
    });
    assert_eq!(&image(&cut)[..4], &[0; 4]);
}

#[test]
fn one_open_at_a_time_until_closed_or_cut() {
    let cut = PowerCut::new();
    let first = cut.backend();
    let second = cut.backend();
    assert!(first.try_lock_range(ALL.0, ALL.1).expect("disk"));
    assert!(!second.try_lock_range(ALL.0, ALL.1).expect("disk"));
    assert!(second.query_lock_range(ALL.0, ALL.1).expect("disk"));
    first.close().expect("disk");
    assert!(second.try_lock_range(ALL.0, ALL.1).expect("disk"));
    cut.cut(Cut::DropUnsynced);
    assert!(cut.backend().try_lock_range(ALL.0, ALL.1).expect("disk"));
    assert!(matches!(
        second.try_lock_range(Bound::Included(5), Bound::Unbounded),
        Err(BackendError::Unsupported)
    ));
}

#[test]
fn reordered_keeps_some_pages_of_each_write() {
    let cut = PowerCut::new();
    let b = cut.backend();
    b.set_len(64 * PAGE).expect("disk");
    b.sync_data().expect("disk");
    b.write(0, &[3; 64 * PAGE as usize]).expect("disk");
    cut.cut(Cut::Reordered { seed: 7 });
    let after = image(&cut);
    let kept = after
        .chunks(PAGE as usize)
        .filter(|p| p.iter().all(|&x| x == 3))
        .count();
    let none = after
        .chunks(PAGE as usize)
        .filter(|p| p.iter().all(|&x| x == 0))
        .count();
    assert_eq!(kept + none, 64, "pages land whole or not at all");
    assert!(kept > 0 && none > 0);
}
