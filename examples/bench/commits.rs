//! hookgate's own count of its store commits (`/metrics`), or a difference of two counts. On
//! redb a commit is one group of the writer's commands; on PostgreSQL an ingest batch, a
//! results batch, a claim or a command.

use crate::procs::Gateway;

#[derive(Clone, Copy, Default)]
pub struct Commits {
    pub n: f64,
    pub commands: f64,
    pub secs: f64,
    pub ingests: f64,
    pub ingest_secs: f64,
}

impl Commits {
    pub async fn read(gw: &Gateway) -> Commits {
        let text = gw.metrics().await;
        let v = |name: &str| crate::procs::value(&text, name);
        Commits {
            n: v("hookgate_commit_seconds_count"),
            commands: v("hookgate_commit_batch_sum"),
            secs: v("hookgate_commit_seconds_sum"),
            ingests: v("hookgate_ingest_seconds_count"),
            ingest_secs: v("hookgate_ingest_seconds_sum"),
        }
    }

    /// What `gw` committed since `before`.
    pub async fn since(gw: &Gateway, before: &Commits) -> Commits {
        let now = Commits::read(gw).await;
        Commits {
            n: now.n - before.n,
            commands: now.commands - before.commands,
            secs: now.secs - before.secs,
            ingests: now.ingests - before.ingests,
            ingest_secs: now.ingest_secs - before.ingest_secs,
        }
    }

    pub fn plus(self, o: Commits) -> Commits {
        Commits {
            n: self.n + o.n,
            commands: self.commands + o.commands,
            secs: self.secs + o.secs,
            ingests: self.ingests + o.ingests,
            ingest_secs: self.ingest_secs + o.ingest_secs,
        }
    }

    pub fn ms_each(&self) -> f64 {
        self.secs * 1000.0 / self.n.max(1.0)
    }

    pub fn commands_each(&self) -> f64 {
        self.commands / self.n.max(1.0)
    }

    /// `N commits of C commands, M ms each`.
    pub fn brief(&self) -> String {
        format!(
            "{:.0} commits of {:.1} commands, {:.2} ms each",
            self.n,
            self.commands_each(),
            self.ms_each()
        )
    }
}
