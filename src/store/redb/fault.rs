//! Fault injection for the store's file: a switch that makes writes and syncs fail as a full
//! or broken disk would, so tests can check what the gateway does then (503s, readiness).
//! Off unless a caller passes one in `StoreOptions::fault`. A switch made with
//! [`FaultSwitch::on_disk`] also puts the store on a [`PowerCut`] disk in memory instead of
//! its file, for tests of power loss.

use std::fs::OpenOptions;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use super::powercut::PowerCut;

/// Turns injected write failures on and off; clones share the switch.
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch {
    failing: Arc<AtomicBool>,
    disk: Option<PowerCut>,
}

impl FaultSwitch {
    /// A switch whose store lives on `disk` rather than in its file: every open of the store
    /// (the writer's reopens too) gets a fresh backend over it.
    pub fn on_disk(disk: PowerCut) -> Self {
        FaultSwitch {
            failing: Arc::default(),
            disk: Some(disk),
        }
    }

    pub fn fail_writes(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// The disk in memory the store lives on, if not its file.
    pub fn disk(&self) -> Option<&PowerCut> {
        self.disk.as_ref()
    }
}

/// A backend (redb's own file backend, or a [`PowerCut`] disk) with the switch in front of
/// every write.
#[derive(Debug)]
pub struct FaultyBackend {
    inner: Box<dyn StorageBackend>,
    switch: FaultSwitch,
}

impl FaultyBackend {
    /// The file at `path`, or the switch's disk if it has one.
    pub fn open(path: &Path, switch: FaultSwitch) -> Result<Self, redb::DatabaseError> {
        let inner: Box<dyn StorageBackend> = match switch.disk() {
            Some(disk) => Box::new(disk.backend()),
            None => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)?;
                Box::new(FileBackend::new(file)?)
            }
        };
        Ok(FaultyBackend { inner, switch })
    }

    fn check(&self) -> std::io::Result<()> {
        if self.switch.failing() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "injected fault: no space left on device",
            ));
        }
        Ok(())
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
