//! A disk for tests that can lose power: a redb storage backend, kept in memory, that holds
//! what reached the platters (the image as of the last `sync_data`) apart from what was only
//! written since (the page cache). A killed process keeps its page cache, so crash tests with
//! `kill -9` cannot tell a missing or misplaced fsync from a correct one; a power cut can.
//!
//! [`PowerCut`] is the disk and the switch at once (clones share it, like
//! [`super::fault::FaultSwitch`]). Hand it to the store through
//! [`super::fault::FaultSwitch::on_disk`] in `StoreOptions::fault`: every open of the store,
//! including the writer's reopen after a failed commit, gets a fresh [`PowerCutBackend`] over
//! the same disk. Reads see the synced image with the unsynced writes applied, as a process
//! reads through the page cache. The handle can:
//!
//! - [`PowerCut::fail_after`]: let the power fail after a given number of further writes,
//!   length changes and syncs, so a cut lands in the middle of a commit; or
//!   [`PowerCut::fail_at_sync`]: at a given sync, when a commit has written everything and
//!   synced nothing. From then on every write, length change and sync fails and changes
//!   nothing; reads still work (the doomed process keeps its page cache).
//! - [`PowerCut::lie_on_sync`]: make a later `sync_data` put the data on the platters and then
//!   report an error anyway ("the write landed but fsync failed"); or
//!   [`PowerCut::lose_on_sync`]: fail it and lose the data on the platters while the page
//!   cache keeps showing it, as Linux does.
//! - [`PowerCut::cut`]: cut the power now and bring it back. What survives is the synced image
//!   with, by [`Cut`], none of the unsynced writes, a prefix of them with the next one torn at
//!   a page boundary, or any subset of their pages (a disk may reorder writes between
//!   flushes). Backends opened before the cut belong to a process that is gone: every call on
//!   them fails from then on, and their lock is released. The disk is then a fresh disk over
//!   the surviving image, ready for the store to be opened again.
//!
//! Locking follows the file backend's guarantee at its simplest level: the whole storage can be
//! locked (exclusively or shared), per backend instance, so a second open while the first is
//! alive fails with "already open", as it does on a file.
//!
//! Test infrastructure: nothing in the gateway uses it.

use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use redb::{BackendError, StorageBackend};

/// The unit a torn write is cut at: a disk persists whole sectors, and page-cache writeback
/// goes by pages.
pub const PAGE: u64 = 4096;

/// What survives a power cut besides what was synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Every write and length change since the last `sync_data` is lost.
    DropUnsynced,
    /// The first `keep` unsynced changes (all of them if there are fewer) land, in order; of
    /// the next one, if it is a write, only the part before one of its page boundaries (picked
    /// by `tear`, modulo the choices; the first choice is none of it).
    Torn { keep: usize, tear: usize },
    /// Every page of every unsynced write lands or not, independently (picked by `seed`), as
    /// a disk that reorders writes between flushes may leave it. Length changes land when
    /// the seed says so too.
    Reordered { seed: u64 },
}

/// What a cut did, for a test's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Writes and length changes not synced when the power went.
    pub unsynced: usize,
    /// Of them, those that landed whole.
    pub landed: usize,
    /// The write torn, if any: its offset, its length, and the bytes that landed.
    pub torn: Option<(u64, usize, usize)>,
    /// The length of the surviving image.
    pub len: u64,
}

/// Counters since the disk was made, for tests that aim a cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub writes: u64,
    pub syncs: u64,
    /// Changes not yet synced.
    pub unsynced: usize,
    /// Power cuts so far.
    pub cuts: u64,
}

#[derive(Debug, Clone)]
enum Change {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fuse {
    /// Writes, length changes and syncs still allowed.
    Calls(u64),
    /// Syncs still allowed.
    Syncs(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailedSync {
    /// The data reached the platters; only the report is wrong.
    Landed,
    /// The data never will, though reads still see it.
    Lost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    Exclusive(u64),
    Shared(u64),
}

#[derive(Default)]
struct Disk {
    /// On the platters: what any cut leaves.
    synced: Vec<u8>,
    /// What reads see: `synced` with `unsynced` applied.
    cached: Vec<u8>,
    /// Writes and length changes since the last sync, in order.
    unsynced: Vec<Change>,
    /// Bumped by every cut: a backend of an earlier boot belongs to a process that is gone.
    boot: u64,
    /// Ids of backend instances, for the lock table.
    next_handle: u64,
    locks: Vec<Lock>,
    /// When the power fails; `None`: not armed.
    fuse: Option<Fuse>,
    /// The power failed: every mutating call fails until [`PowerCut::cut`].
    off: bool,
    /// A failing sync: how many to let pass before it, and whether its data lands.
    lie_in: Option<(u64, FailedSync)>,
    stats: DiskStats,
}

fn apply(image: &mut Vec<u8>, change: &Change) {
    match change {
        Change::SetLen(len) => image.resize(to_usize(*len), 0),
        Change::Write { offset, data } => write_at(image, *offset, data),
    }
}

fn write_at(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    // Writing past the end extends the file, as it does on a real one.
    let start = to_usize(offset);
    let end = start.saturating_add(data.len());
    if image.len() < end {
        image.resize(end, 0);
    }
    if let Some(target) = image.get_mut(start..end) {
        target.copy_from_slice(data);
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// splitmix64: a few lines of well-spread bits from a seed, for [`Cut::Reordered`].
fn next_bits(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The page boundaries strictly inside a write, as offsets from its start.
fn inner_boundaries(offset: u64, len: usize) -> Vec<usize> {
    let end = offset.saturating_add(len as u64);
    let mut out = Vec::new();
    let mut b = (offset / PAGE).saturating_add(1).saturating_mul(PAGE);
    while b < end {
        out.push(to_usize(b - offset));
        b = b.saturating_add(PAGE);
    }
    out
}

impl Disk {
    fn survivors(&self, how: Cut) -> (Vec<u8>, CutReport) {
        let mut image = self.synced.clone();
        let mut report = CutReport {
            unsynced: self.unsynced.len(),
            ..CutReport::default()
        };
        match how {
            Cut::DropUnsynced => {}
            Cut::Torn { keep, tear } => {
                let keep = keep.min(self.unsynced.len());
                for change in &self.unsynced[..keep] {
                    apply(&mut image, change);
                }
                report.landed = keep;
                if let Some(Change::Write { offset, data }) = self.unsynced.get(keep) {
                    let mut points = vec![0];
                    points.extend(inner_boundaries(*offset, data.len()));
                    let at = points[tear % points.len()];
                    if at > 0 {
                        write_at(&mut image, *offset, &data[..at]);
                    }
                    report.torn = Some((*offset, data.len(), at));
                }
            }
            Cut::Reordered { seed } => {
                let mut state = seed;
                for change in &self.unsynced {
                    match change {
                        Change::SetLen(_) => {
                            if next_bits(&mut state) & 1 == 1 {
                                apply(&mut image, change);
                                report.landed += 1;
                            }
                        }
                        Change::Write { offset, data } => {
                            let mut starts = vec![0];
                            starts.extend(inner_boundaries(*offset, data.len()));
                            let mut kept = 0;
                            for (i, &from) in starts.iter().enumerate() {
                                let to = starts.get(i + 1).copied().unwrap_or(data.len());
                                if next_bits(&mut state) & 1 == 1 {
                                    write_at(&mut image, offset + from as u64, &data[from..to]);
                                    kept += to - from;
                                }
                            }
                            if kept == data.len() {
                                report.landed += 1;
                            }
                        }
                    }
                }
            }
        }
        report.len = image.len() as u64;
        (image, report)
    }
}

/// The disk and its power switch; clones share both. See the module doc.
#[derive(Clone, Default)]
pub struct PowerCut(Arc<Shared>);

#[derive(Default)]
struct Shared {
    disk: Mutex<Disk>,
    /// Signalled when a lock is released, for the blocking lock methods.
    unlocked: Condvar,
}

impl fmt::Debug for PowerCut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let disk = self.disk();
        f.debug_struct("PowerCut")
            .field("synced_len", &disk.synced.len())
            .field("cached_len", &disk.cached.len())
            .field("unsynced", &disk.unsynced.len())
            .field("off", &disk.off)
            .finish()
    }
}

impl PowerCut {
    /// An empty disk, powered on.
    pub fn new() -> Self {
        Self::default()
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0.disk.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A backend over this disk, as opening the file again would give.
    pub fn backend(&self) -> PowerCutBackend {
        let mut disk = self.disk();
        disk.next_handle += 1;
        PowerCutBackend {
            disk: self.clone(),
            boot: disk.boot,
            handle: disk.next_handle,
        }
    }

    /// The power fails after `calls` more writes, length changes and syncs: the next one after
    /// them fails, and so does every one until [`Self::cut`]. `0`: the very next one.
    pub fn fail_after(&self, calls: u64) {
        self.disk().fuse = Some(Fuse::Calls(calls));
    }

    /// The power fails at the sync after `skip` more syncs: that sync fails, and so does every
    /// write, length change and sync until [`Self::cut`]. What was written before it is
    /// unsynced, for the cut to keep or lose.
    pub fn fail_at_sync(&self, skip: u64) {
        self.disk().fuse = Some(Fuse::Syncs(skip));
    }

    /// The power fails now, for whatever writes next (the cut itself is [`Self::cut`]).
    pub fn power_off(&self) {
        self.disk().off = true;
    }

    /// Whether the power has failed (and not been cut and restored since).
    pub fn is_off(&self) -> bool {
        self.disk().off
    }

    /// After `skip` more syncs that behave, one lands (everything written is synced) and then
    /// reports an error, as an fsync can whose data reached the disk.
    pub fn lie_on_sync(&self, skip: u64) {
        self.disk().lie_in = Some((skip, FailedSync::Landed));
    }

    /// After `skip` more syncs that behave, one reports an error and what was written since
    /// the last sync never reaches the platters, while reads still see it: Linux marks pages
    /// whose writeback failed clean and keeps them in the page cache ("fsyncgate"). Reopening
    /// the file in the same boot reads them; a power cut loses them.
    pub fn lose_on_sync(&self, skip: u64) {
        self.disk().lie_in = Some((skip, FailedSync::Lost));
    }

    /// Whether a fault armed with [`Self::fail_after`], [`Self::fail_at_sync`],
    /// [`Self::lie_on_sync`] or [`Self::lose_on_sync`] has not fired yet.
    pub fn armed(&self) -> bool {
        let disk = self.disk();
        disk.fuse.is_some() || disk.lie_in.is_some()
    }

    /// Disarms what was armed and has not fired.
    pub fn disarm(&self) {
        let mut disk = self.disk();
        disk.fuse = None;
        disk.lie_in = None;
    }

    /// Cuts the power (if it has not failed already) and brings it back: the disk keeps its
    /// synced image and, by `how`, some of what was written since. Backends opened before
    /// are dead from now on. Disarms every armed fault.
    pub fn cut(&self, how: Cut) -> CutReport {
        let mut disk = self.disk();
        let (image, report) = disk.survivors(how);
        disk.cached = image.clone();
        disk.synced = image;
        disk.unsynced.clear();
        disk.boot += 1;
        // The process that held them is gone, and with it its locks.
        disk.locks.clear();
        disk.fuse = None;
        disk.lie_in = None;
        disk.off = false;
        disk.stats.cuts += 1;
        drop(disk);
        self.0.unlocked.notify_all();
        report
    }

    /// What is on the platters now: what a cut that keeps nothing unsynced would leave (for a
    /// test to save, say, and open with redb's file backend).
    pub fn synced_image(&self) -> Vec<u8> {
        self.disk().synced.clone()
    }

    pub fn stats(&self) -> DiskStats {
        let disk = self.disk();
        DiskStats {
            unsynced: disk.unsynced.len(),
            ..disk.stats
        }
    }
}

/// One open of the disk; what redb holds. See [`PowerCut`].
#[derive(Debug)]
pub struct PowerCutBackend {
    disk: PowerCut,
    boot: u64,
    handle: u64,
}

fn gone() -> std::io::Error {
    std::io::Error::other("power cut: the process that opened this is gone")
}

fn no_power() -> std::io::Error {
    std::io::Error::other("injected power failure: the disk is gone")
}

/// Only whole-storage locks are supported (level 2 of redb's `StorageBackend` contract).
fn whole(start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
    match (start, end) {
        (Bound::Unbounded | Bound::Included(0), Bound::Unbounded) => Ok(()),
        _ => Err(BackendError::Unsupported),
    }
}

impl PowerCutBackend {
    /// The disk, if this backend's process is still alive.
    fn live(&self) -> std::io::Result<MutexGuard<'_, Disk>> {
        let disk = self.disk.disk();
        if disk.boot != self.boot {
            return Err(gone());
        }
        Ok(disk)
    }

    /// The disk for a write, length change or sync: fails once the power has.
    fn powered(&self, sync: bool) -> std::io::Result<MutexGuard<'_, Disk>> {
        let mut disk = self.live()?;
        match disk.fuse {
            Some(Fuse::Calls(0)) => {
                disk.fuse = None;
                disk.off = true;
            }
            Some(Fuse::Syncs(0)) if sync => {
                disk.fuse = None;
                disk.off = true;
            }
            Some(Fuse::Calls(n)) => disk.fuse = Some(Fuse::Calls(n - 1)),
            Some(Fuse::Syncs(n)) if sync => disk.fuse = Some(Fuse::Syncs(n - 1)),
            Some(Fuse::Syncs(_)) | None => {}
        }
        if disk.off {
            return Err(no_power());
        }
        Ok(disk)
    }

    fn conflicts(&self, disk: &Disk, shared: bool) -> bool {
        disk.locks.iter().any(|l| match l {
            Lock::Exclusive(h) => *h != self.handle,
            Lock::Shared(h) => !shared && *h != self.handle,
        })
    }

    fn take(&self, disk: &mut Disk, shared: bool) {
        disk.locks.push(if shared {
            Lock::Shared(self.handle)
        } else {
            Lock::Exclusive(self.handle)
        });
    }

    fn try_lock(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
        shared: bool,
    ) -> Result<bool, BackendError> {
        whole(start, end)?;
        let mut disk = self.live()?;
        if self.conflicts(&disk, shared) {
            return Ok(false);
        }
        self.take(&mut disk, shared);
        Ok(true)
    }

    fn lock(&self, start: Bound<u64>, end: Bound<u64>, shared: bool) -> Result<(), BackendError> {
        whole(start, end)?;
        let mut disk = self.live()?;
        while self.conflicts(&disk, shared) {
            disk = self
                .disk
                .0
                .unlocked
                .wait(disk)
                .unwrap_or_else(PoisonError::into_inner);
            if disk.boot != self.boot {
                return Err(gone().into());
            }
        }
        self.take(&mut disk, shared);
        Ok(())
    }

    fn release_locks(&self) {
        let mut disk = self.disk.disk();
        if disk.boot == self.boot {
            let handle = self.handle;
            disk.locks
                .retain(|l| !matches!(l, Lock::Exclusive(h) | Lock::Shared(h) if *h == handle));
        }
        drop(disk);
        self.disk.0.unlocked.notify_all();
    }
}

impl Drop for PowerCutBackend {
    fn drop(&mut self) {
        self.release_locks();
    }
}

impl StorageBackend for PowerCutBackend {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.live()?.cached.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let disk = self.live()?;
        let start = to_usize(offset);
        let source = disk
            .cached
            .get(start..start.saturating_add(out.len()))
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end")
            })?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut disk = self.powered(false)?;
        let change = Change::SetLen(len);
        apply(&mut disk.cached, &change);
        disk.unsynced.push(change);
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        let mut disk = self.powered(true)?;
        disk.stats.syncs += 1;
        let changes = std::mem::take(&mut disk.unsynced);
        let fails = match disk.lie_in {
            Some((0, how)) => {
                disk.lie_in = None;
                Some(how)
            }
            Some((n, how)) => {
                disk.lie_in = Some((n - 1, how));
                None
            }
            None => None,
        };
        if fails != Some(FailedSync::Lost) {
            for change in &changes {
                apply(&mut disk.synced, change);
            }
        }
        match fails {
            None => Ok(()),
            Some(FailedSync::Landed) => Err(std::io::Error::other(
                "injected fault: fsync reported an error (the data landed)",
            )),
            Some(FailedSync::Lost) => Err(std::io::Error::other(
                "injected fault: fsync reported an error (the data is lost)",
            )),
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut disk = self.powered(false)?;
        disk.stats.writes += 1;
        write_at(&mut disk.cached, offset, data);
        disk.unsynced.push(Change::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }

    fn close(&self) -> std::io::Result<()> {
        self.release_locks();
        Ok(())
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.try_lock(start, end, false)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.try_lock(start, end, true)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.lock(start, end, false)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.lock(start, end, true)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        whole(start, end)?;
        self.release_locks();
        Ok(())
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        whole(start, end)?;
        let disk = self.live()?;
        Ok(self.conflicts(&disk, false))
    }
}

#[cfg(test)]
mod tests;
