//! Whose clock decides what is due. On its own clock (the contract tests, which move a clock by
//! hand) every "now" is the injected clock's and every time is stored as given. On the
//! database's clock (production, several nodes) **every due and lease comparison uses the
//! database's clock**: a caller's time is its offset from the caller's own now, added to the
//! database's now (`hookgate_db_now_ms()`, `clock_timestamp()` in milliseconds), so nodes whose
//! clocks disagree still agree on what is due. Reads do this in SQL (`hookgate_at`); a
//! transaction that asks the outbox rules reads the database's now once ([`Clock::now`]) and
//! shifts the caller's times by the same skew.

use deadpool_postgres::GenericClient;

use super::error::Fail;
use crate::clock::SharedClock;

pub(super) struct Clock {
    clock: SharedClock,
    database: bool,
}

impl Clock {
    pub(super) fn new(clock: SharedClock, database: bool) -> Clock {
        Clock { clock, database }
    }

    /// The caller's now.
    pub(super) fn local(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The `local_now` argument of `hookgate_at`: `NULL` on the node's own clock (times stay as
    /// given), else the caller's now (times move to the database's clock).
    pub(super) fn sql_base(&self) -> Option<i64> {
        self.database.then(|| ms(self.local()))
    }

    /// Now, for a transaction: the database's (one round trip) or the caller's.
    pub(super) async fn now(&self, client: &impl GenericClient) -> Result<Now, Fail> {
        let local = self.local();
        if !self.database {
            return Ok(Now { local, skew: 0 });
        }
        let row = client.query_one("SELECT hookgate_db_now_ms()", &[]).await?;
        let db: i64 = row.try_get(0)?;
        Ok(Now {
            local,
            skew: i128::from(db) - i128::from(local),
        })
    }
}

/// One transaction's now, and how far the database's clock is from the caller's.
#[derive(Debug, Clone, Copy)]
pub(super) struct Now {
    local: u64,
    skew: i128,
}

impl Now {
    /// Now on the clock times are stored by.
    pub(super) fn ms(&self) -> u64 {
        self.at(self.local)
    }

    /// A caller's time on the clock times are stored by (saturating, within `i64`).
    pub(super) fn at(&self, t: u64) -> u64 {
        let shifted = i128::from(t.min(i64::MAX as u64)) + self.skew;
        shifted.clamp(0, i128::from(i64::MAX)) as u64
    }
}

/// A time as the database stores it (`bigint`): saturates rather than wrapping.
pub(super) fn ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// A stored time back (a negative one cannot be written, and reads as 0).
pub(super) fn unms(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_move_by_the_skew_and_saturate() {
        let fixed = Now {
            local: 1_000,
            skew: 0,
        };
        assert_eq!((fixed.ms(), fixed.at(u64::MAX)), (1_000, i64::MAX as u64));
        let behind = Now {
            local: 1_000,
            skew: 5_000,
        };
        assert_eq!((behind.ms(), behind.at(31_000)), (6_000, 36_000));
        let ahead = Now {
            local: 1_000,
            skew: -5_000,
        };
        assert_eq!(ahead.at(2_000), 0);
        assert_eq!((ms(u64::MAX), unms(-1)), (i64::MAX, 0));
    }
}
