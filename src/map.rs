//! The read-only memory mapping of the data file: the only `unsafe` code in mtrdb.
//!
//! # Why this is sound
//!
//! `memmap2::Mmap::map` is `unsafe` because the mapped bytes may change underneath a `&[u8]`
//! that Rust assumes immutable, and because a file truncated underneath a mapping turns reads
//! of the lost range into `SIGBUS`. mtrdb holds to these rules:
//!
//! 1. **Exclusive ownership.** The database directory is locked exclusively
//!    ([`mtr::DirStorage`] takes `File::try_lock` on `LOCK`) before the data file is opened, so no
//!    other mtrdb handle, in this process or another, writes or truncates it while it is mapped.
//!    A process that ignores the lock and truncates or rewrites the file is outside the contract:
//!    reads may then see torn bytes (caught by page checksums) or the process may receive
//!    `SIGBUS`, as with LMDB and every other mmap-based store.
//! 2. **The mapping is read-only** (`PROT_READ`). mtrdb never writes through it, so the kernel can
//!    never write a half-changed page back to the file behind the log's back: changes are made in
//!    private buffers and written with `pwrite` only after the redo log is durable past their LSN
//!    (write-ahead). The shared page cache makes those writes visible through the mapping.
//! 3. **No slice outlives its mapping.** A [`Mapping`] lives inside the pager, behind the tree's
//!    `RwLock`; every slice handed out borrows the read guard. Growing the file and remapping
//!    needs the write lock, which waits until every borrowed slice is gone.
//! 4. **Never a page that is being written.** The pager only `pwrite`s a page while its newer
//!    image is held in the dirty-page table, where readers find it first; a reader looks at the
//!    mapping only for pages with no pending write. The bytes under a live slice therefore do not
//!    change while it is borrowed.
//! 5. **Every byte read is validated before it is trusted**: a page from the mapping is
//!    checksummed and structurally validated before the first use (and again after each write of
//!    it), and all decoding is bounds-checked.
//! 6. **Only whole pages inside the mapped length** are handed out (checked arithmetic).

use std::fs::File;

use memmap2::{Mmap, MmapOptions};

/// A read-only mapping of the first `len` bytes of a file.
pub(crate) struct Mapping {
    map: Option<Mmap>,
}

impl Mapping {
    /// Maps the first `len` bytes of `file` (nothing if `len` is 0).
    pub(crate) fn new(file: &File, len: u64) -> std::io::Result<Mapping> {
        if len == 0 {
            return Ok(Mapping { map: None });
        }
        let len = usize::try_from(len).map_err(|_| std::io::Error::other("data file too large to map"))?;
        // SAFETY: the directory lock gives this process exclusive use of the file (rule 1 of the
        // module doc); the mapping is read-only (rule 2); `len` does not exceed the file's length,
        // which the caller just read and which only this process changes, and only ever grows
        // while mapped (the pager remaps under the write lock after growing it).
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(Mapping { map: Some(map) })
    }

    /// The bytes `[offset, offset + len)`, if they lie inside the mapping.
    pub(crate) fn get(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        self.map.as_ref()?.get(offset..end)
    }
}
