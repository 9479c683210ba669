//! The history tables by day (schema version 2). `events`, `event_progress`,
//! `deliveries_done` and `attempts` are partitioned by range on the ULID that leads their key;
//! a [`Day`] (UTC) holds the ids whose millisecond falls in it, in partitions named
//! `<table>_pYYYYMMDD`. An event's deliveries are made with it, in its millisecond, so an
//! event and everything of it share a day.
//!
//! **There is no DEFAULT partition** (with one, every new or dropped partition locks and scans
//! it), so a row needs its day's partitions to exist: they are made ahead, today to today +
//! [`AHEAD`] days by the clock times are stored by, at open and on every pruning pass; and
//! **an ingest whose day has none makes them and is written again**, so ingest never fails
//! for lack of a partition (a node whose clock is far off, tests on a hand-moved clock).
//! Making a partition locks its parent, so it is done under [`PARTITION_LOCK`] (two nodes do
//! not race) with a short `lock_timeout`, and only for days that are missing. The DDL itself
//! is the schema's `hookgate_make_day`, which the migration uses too. Dropping days past
//! retention is `retire.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;

use super::Shared;
use super::error::Fail;

/// One UTC day in milliseconds.
pub(super) const DAY_MS: u64 = 86_400_000;
/// Days made ahead of today.
pub(super) const AHEAD: u32 = 7;
/// The partitioned tables, in the order they are locked.
pub(super) const TABLES: [&str; 4] = ["events", "event_progress", "deliveries_done", "attempts"];
/// The key of the advisory lock held while partitions are made or dropped (`hookgate` in
/// ASCII, plus two).
pub(super) const PARTITION_LOCK: i64 = 0x686f_6f6b_6761_7467;
/// How long making partitions ahead (or dropping a day) waits for its table locks before
/// giving up until the next pass. Past the deadlock check (1 s by default), so an autovacuum
/// of the partition is cancelled rather than waited out.
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(2);
/// How long an ingest that needs a day's partitions waits for their locks.
pub(super) const ON_DEMAND_WAIT: Duration = Duration::from_secs(10);

/// The last millisecond a ULID can hold.
const ULID_MS_MAX: u64 = (1 << 48) - 1;

/// A UTC day: days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Day(pub(super) u32);

impl Day {
    /// The day a time (ms since the epoch) falls in.
    pub(super) fn of_ms(ms: u64) -> Day {
        Day(u32::try_from(ms.min(ULID_MS_MAX) / DAY_MS).unwrap_or(u32::MAX))
    }

    /// The day of an id: the day of its millisecond.
    pub(super) fn of_id(id: u128) -> Day {
        Day::of_ms(u64::try_from(id >> 80).unwrap_or(u64::MAX))
    }

    pub(super) fn next(self) -> Day {
        Day(self.0.saturating_add(1))
    }

    /// Its first millisecond.
    pub(super) fn start_ms(self) -> u64 {
        u64::from(self.0) * DAY_MS
    }

    /// The first millisecond after it.
    pub(super) fn end_ms(self) -> u64 {
        self.next().start_ms()
    }

    /// As the schema's functions take it.
    pub(super) fn sql(self) -> i32 {
        i32::try_from(self.0).unwrap_or(i32::MAX)
    }

    /// Its partition of `table`: `events_p20261130`.
    pub(super) fn partition(self, table: &str) -> String {
        let (y, m, d) = civil(i64::from(self.0));
        format!("{table}_p{y:04}{m:02}{d:02}")
    }

    /// The day of a partition of `table` named as [`Day::partition`] names it; `None` for any
    /// other name (a table an operator made is never taken for a day).
    pub(super) fn parse(table: &str, name: &str) -> Option<Day> {
        let digits = name.strip_prefix(table)?.strip_prefix("_p")?;
        if digits.len() < 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (year, rest) = digits.split_at(digits.len() - 4);
        let (month, day) = rest.split_at(2);
        let (y, m, d) = (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
        let days = days_from_civil(y, m, d);
        // Only a real date, written as this module writes it, is a day.
        let day = Day(u32::try_from(days).ok()?);
        (day.partition(table) == name).then_some(day)
    }

    /// The first id of the day: its millisecond, then zeros (as `hookgate_day_bound`).
    #[cfg(test)]
    fn first_id(self) -> u128 {
        u128::from(self.start_ms()) << 80
    }
}

impl std::fmt::Display for Day {
    /// `2026-11-30`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d) = civil(i64::from(self.0));
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// (year, month, day) of a count of days since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// Days since 1970-01-01 of a date (`days_from_civil`); out-of-range months and days give
/// some other date, which [`Day::parse`] refuses by writing it back.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let (m, d) = (i64::from(m.clamp(1, 12)), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether a statement failed because its row has no partition (no day made for it): the
/// server's check violation that names no constraint.
pub(super) fn is_missing(e: &Fail) -> bool {
    matches!(e, Fail::Pg(e) if e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::CHECK_VIOLATION && db.constraint().is_none()
    }))
}

/// The days from `today` to `today` + [`AHEAD`].
pub(super) fn ahead(today: Day) -> Vec<Day> {
    (0..=AHEAD)
        .map(|n| Day(today.0.saturating_add(n)))
        .collect()
}

/// The event cutoff of a row-level pruning step. With a retention of a day or more, history
/// goes by whole days (`retire.rs`): a step leaves alone the events of a day not yet wholly
/// past retention, which its drop takes at once, and removes only those of earlier days (what
/// a drop kept, as it becomes prunable). A shorter retention than a partition's width cannot
/// wait for whole days: rows go one by one at the cutoff, as in redb.
pub(super) fn step_cutoff(now_ms: u64, events_before_ms: u64) -> u64 {
    if now_ms.saturating_sub(events_before_ms) >= DAY_MS {
        Day::of_ms(events_before_ms).start_ms()
    } else {
        events_before_ms
    }
}

/// The days whose partitions of `events` exist, oldest first.
pub(super) async fn existing(client: &impl GenericClient) -> Result<Vec<Day>, Fail> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'events'::regclass",
            &[],
        )
        .await?;
    let mut days = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get(0)?;
        days.extend(Day::parse(TABLES[0], &name));
    }
    days.sort();
    Ok(days)
}

/// Of `days`, those with a partition of some table missing.
async fn missing(client: &impl GenericClient, days: &[Day]) -> Result<Vec<Day>, Fail> {
    let names: Vec<String> = days
        .iter()
        .flat_map(|d| TABLES.iter().map(|t| d.partition(t)))
        .collect();
    let rows = client
        .query(
            "SELECT n FROM unnest($1::text[]) n WHERE to_regclass(n) IS NULL",
            &[&names],
        )
        .await?;
    let mut out = BTreeSet::new();
    for row in rows {
        let name: String = row.try_get(0)?;
        out.extend(TABLES.iter().find_map(|t| Day::parse(t, &name)));
    }
    Ok(out.into_iter().collect())
}

/// Makes the partitions of `days` that do not exist yet, under [`PARTITION_LOCK`], waiting at
/// most `wait` for each lock; returns the days made.
pub(super) async fn make(shared: &Shared, days: &[Day], wait: Duration) -> Result<Vec<Day>, Fail> {
    let mut client = shared.conn().await?;
    if missing(&client, days).await?.is_empty() {
        return Ok(Vec::new());
    }
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = {}", wait.as_millis()))
        .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await?;
    // Another node may have made them while this one waited.
    let made = missing(&tx, days).await?;
    for day in &made {
        tx.execute("SELECT hookgate_make_day($1)", &[&day.sql()])
            .await?;
    }
    tx.commit().await?;
    if !made.is_empty() {
        let days: Vec<String> = made.iter().map(Day::to_string).collect();
        tracing::info!(?days, "made the history partitions of new days");
    }
    Ok(made)
}

/// Makes the partitions of today to today + [`AHEAD`], by the clock times are stored by.
pub(super) async fn make_ahead(shared: &Shared) -> Result<(), Fail> {
    let now = {
        let client = shared.conn().await?;
        shared.clock.now(&client).await?.ms()
    };
    make(shared, &ahead(Day::of_ms(now)), LOCK_WAIT).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2023-11-14T22:13:20Z.
    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn a_day_is_named_by_its_utc_date() {
        assert_eq!(Day(0).partition("events"), "events_p19700101");
        let t0 = Day::of_ms(T0);
        assert_eq!(t0.partition("attempts"), "attempts_p20231114");
        assert_eq!(t0.start_ms(), 1_699_920_000_000);
        assert_eq!(t0.end_ms(), 1_700_006_400_000);
        // Leap days, the turn of a year, and the last day a ULID can reach.
        assert_eq!(Day::of_ms(1_709_164_800_000).partition("e"), "e_p20240229");
        assert_eq!(Day::of_ms(1_709_251_200_000).partition("e"), "e_p20240301");
        assert_eq!(Day::of_ms(1_704_067_199_999).partition("e"), "e_p20231231");
        assert_eq!(Day::of_ms(u64::MAX).partition("e"), "e_p108890802");
    }

    #[test]
    fn a_name_gives_its_day_back_and_no_other_name_does() {
        for day in [Day(0), Day(19_675), Day(19_782), Day::of_ms(u64::MAX)] {
            for table in TABLES {
                assert_eq!(Day::parse(table, &day.partition(table)), Some(day));
            }
        }
        for name in [
            "events_p2023111",
            "events_p20231131",
            "events_p20231300",
            "events_p2023111a",
            "events_20231114",
            "events_p020231114",
            "event_progress_p20231114",
            "events_p19691231",
        ] {
            assert_eq!(Day::parse("events", name), None, "{name}");
        }
        // One table's partitions are not another's.
        assert_eq!(Day::parse("event", "events_p20231114"), None);
    }

    #[test]
    fn a_day_holds_exactly_the_ids_of_its_milliseconds() {
        let day = Day::of_ms(T0);
        let first = day.first_id();
        let last = day.next().first_id() - 1;
        assert_eq!((Day::of_id(first), Day::of_id(last)), (day, day));
        assert_eq!(Day::of_id(first - 1), Day(day.0 - 1));
        assert_eq!(Day::of_id(last + 1), day.next());
        // An id made at T0 (any random part) is in T0's day.
        let id = ulid::Ulid::from_parts(T0, u128::MAX).0;
        assert_eq!(Day::of_id(id), day);
        assert_eq!(Day::of_id(u128::MAX), Day::of_ms(ULID_MS_MAX));
    }

    #[test]
    fn steps_leave_a_day_to_its_drop_when_the_retention_is_a_day_or_more() {
        let day = Day::of_ms(T0);
        // Seven days: only days wholly past the cutoff, which a drop has taken already.
        assert_eq!(step_cutoff(T0 + 7 * DAY_MS, T0), day.start_ms());
        assert_eq!(step_cutoff(T0 + DAY_MS, T0), day.start_ms());
        // At a day's first millisecond, the day before is wholly past.
        assert_eq!(
            step_cutoff(day.start_ms() + DAY_MS, day.start_ms()),
            day.start_ms()
        );
        // Shorter: to the millisecond.
        assert_eq!(step_cutoff(T0 + DAY_MS - 1, T0), T0);
        assert_eq!(step_cutoff(T0 + 10_000, T0), T0);
    }

    #[test]
    fn days_are_made_from_today_for_a_week_ahead() {
        let today = Day::of_ms(T0);
        let days = ahead(today);
        assert_eq!(days.len(), 8);
        assert_eq!((days[0], days[7]), (today, Day(today.0 + 7)));
    }
}
