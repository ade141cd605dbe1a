//! Snapshot files: [`SnapshotFile`], the data openraft sends and receives, and the file format.
//!
//! A snapshot file holds the replicated map at one batch boundary of the state machine. It is
//! written once, synced, and only then named as the current snapshot (in the metadata keyspace,
//! by one durable batch), so a crash never leaves a current snapshot that is partly written.
//! Files live in a [`Storage`] of their own (a directory, or the fault-injecting storage in
//! tests), named `raft.{group}.snapshot.{number}`.
//!
//! ## Format (all integers little-endian)
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 8 | magic `MTRDBSN1` |
//! | 8 | 4 | `M`, the length of the metadata |
//! | 12 | `M` | the snapshot's metadata, openraft's `SnapshotMeta` as JSON |
//! | 12 + `M` | … | records, in key order: key length (4), key, value length (4), value |
//! | end − 8 | 4 | `0xFFFF_FFFF`, where a key length would be: the end of the records |
//! | end − 4 | 4 | CRC-32C of every byte before it |
//!
//! A key is at most [`crate::MAX_KEY_BYTES`] bytes and a value at most
//! [`mtrdb::MAX_VALUE_BYTES`]: a reader refuses larger lengths before it allocates, so a damaged
//! or foreign file costs no more memory than one valid record.
//!
//! This module owns the format and the file handle; it must not write to the database.

use std::io::{self, BufRead, BufReader, BufWriter, Read, SeekFrom, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use mtrdb::{Storage, StorageFile};
use openraft::SnapshotMeta;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use crate::{Error, MAX_KEY_BYTES};

/// The first 8 bytes of a snapshot file.
pub const MAGIC: &[u8; 8] = b"MTRDBSN1";
/// The key length that ends the records.
const END_OF_RECORDS: u32 = u32::MAX;
/// The largest metadata: far above any membership's JSON, and a bound for a damaged file.
const MAX_META_BYTES: u32 = 16 << 20;
/// Reads and writes go through buffers of this size.
const BUFFER_BYTES: usize = 1 << 20;

/// The metadata of a snapshot of this crate's types.
pub type Meta = SnapshotMeta<u64, openraft::BasicNode>;

/// A snapshot file, as openraft reads it to send it and writes it as it receives it: tokio's
/// `AsyncRead`, `AsyncWrite` and `AsyncSeek` over one file of a [`Storage`].
///
/// Its reads and writes go straight to the file (the page cache) and complete at once; openraft
/// moves a snapshot in chunks (`Config::snapshot_max_chunk_size`, 3 MiB by default), so one call
/// is one chunk.
pub struct SnapshotFile {
    file: Arc<dyn StorageFile>,
    pub(crate) number: u64,
    pub(crate) name: String,
    /// The storage holding it: a snapshot received into this node's own storage is installed in
    /// place, any other is copied.
    pub(crate) storage: Arc<dyn Storage>,
    len: u64,
    position: u64,
    /// A snapshot being received, not installed: its file is removed when openraft drops it
    /// (a newer snapshot began, the leader changed), not left until the next open.
    pub(crate) unclaimed: bool,
    /// For a snapshot being received: the gate that holds purges back until it is installed or
    /// dropped.
    pub(crate) reception: Option<Arc<crate::log_store::PurgeGate>>,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile").field("name", &self.name).field("len", &self.len).finish()
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        if self.unclaimed {
            // Only space if it fails: the next open removes it.
            let _ = self.storage.remove_file(&self.name);
        }
        if let Some(gate) = self.reception.take() {
            gate.reception_ended();
        }
    }
}

impl SnapshotFile {
    pub(crate) fn new(
        file: Arc<dyn StorageFile>,
        number: u64,
        name: String,
        storage: Arc<dyn Storage>,
    ) -> io::Result<SnapshotFile> {
        let len = file.len()?;
        Ok(SnapshotFile { file, number, name, storage, len, position: 0, unclaimed: false, reception: None })
    }

    /// Whether it is file `name` of `storage`.
    pub(crate) fn is(&self, storage: &Arc<dyn Storage>, name: &str) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.storage), Arc::as_ptr(storage)) && self.name == name
    }

    pub(crate) fn file(&self) -> &Arc<dyn StorageFile> {
        &self.file
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty (a snapshot being received, before its first chunk).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = (this.len.saturating_sub(this.position)).min(buf.remaining() as u64) as usize;
        if n > 0 {
            let into = buf.initialize_unfilled_to(n);
            if let Err(error) = this.file.read_exact_at(&mut into[..n], this.position) {
                return Poll::Ready(Err(error));
            }
            buf.advance(n);
            this.position += n as u64;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(error) = this.file.write_all_at(buf, this.position) {
            return Poll::Ready(Err(error));
        }
        this.position += buf.len() as u64;
        this.len = this.len.max(this.position);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Installing syncs the file before naming it: nothing to do per chunk.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let target = match position {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => this.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => this.position.checked_add_signed(delta),
        };
        this.position = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.position))
    }
}

/// `std::io::Read` over a storage file, from offset 0 to its length at creation.
struct FileRead {
    file: Arc<dyn StorageFile>,
    offset: u64,
    len: u64,
}

impl Read for FileRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len - self.offset).min(buf.len() as u64) as usize;
        self.file.read_exact_at(&mut buf[..n], self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// `std::io::Write` over a storage file, from offset 0.
struct FileWrite {
    file: Arc<dyn StorageFile>,
    offset: u64,
}

impl Write for FileWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(buf, self.offset)?;
        self.offset += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes a snapshot file: [`SnapshotWriter::start`], a [`SnapshotWriter::record`] per entry in
/// key order, [`SnapshotWriter::finish`]. The caller syncs the file.
pub(crate) struct SnapshotWriter {
    out: BufWriter<FileWrite>,
    crc: u32,
}

impl SnapshotWriter {
    pub fn start(file: Arc<dyn StorageFile>, meta: &Meta) -> io::Result<SnapshotWriter> {
        let mut writer =
            SnapshotWriter { out: BufWriter::with_capacity(BUFFER_BYTES, FileWrite { file, offset: 0 }), crc: 0 };
        let meta = crate::names::encode(meta);
        writer.put(MAGIC)?;
        writer.put(&(meta.len() as u32).to_le_bytes())?;
        writer.put(&meta)?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.out.write_all(bytes)
    }

    pub fn record(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.put(&(key.len() as u32).to_le_bytes())?;
        self.put(key)?;
        self.put(&(value.len() as u32).to_le_bytes())?;
        self.put(value)
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.put(&END_OF_RECORDS.to_le_bytes())?;
        let crc = self.crc;
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()
    }
}

/// A key and its value.
pub(crate) type Record = (Vec<u8>, Vec<u8>);

/// Reads a snapshot file: the metadata first ([`SnapshotReader::open`]), then
/// [`SnapshotReader::next_record`] until `None`, which also checks the CRC.
pub(crate) struct SnapshotReader {
    input: BufReader<FileRead>,
    crc: u32,
    pub meta: Meta,
    what: String,
}

impl SnapshotReader {
    /// Opens `file` (named `what` in errors) and reads its metadata.
    pub fn open(file: Arc<dyn StorageFile>, what: String) -> Result<SnapshotReader, Error> {
        let len = file.len().map_err(|source| Error::Io {
            action: "reading a snapshot's length",
            file: what.clone(),
            source,
        })?;
        let input = BufReader::with_capacity(BUFFER_BYTES, FileRead { file, offset: 0, len });
        let placeholder = Meta::default();
        let mut reader = SnapshotReader { input, crc: 0, meta: placeholder, what };
        let mut magic = [0; 8];
        reader.take(&mut magic)?;
        if &magic != MAGIC {
            return Err(reader.corrupt(format!("it starts with {magic:02x?}, not the snapshot magic")));
        }
        let meta_len = reader.u32()?;
        if meta_len > MAX_META_BYTES {
            return Err(reader.corrupt(format!("its metadata claims {meta_len} bytes")));
        }
        let mut meta = vec![0; meta_len as usize];
        reader.take(&mut meta)?;
        reader.meta = crate::names::decode(&meta, &format!("the metadata of {}", reader.what))?;
        Ok(reader)
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::Corrupt { detail: format!("snapshot {}: {detail}", self.what) }
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        match self.input.read_exact(buf) {
            Ok(()) => {
                self.crc = crc32c::crc32c_append(self.crc, buf);
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Err(self.corrupt("it ends early".into())),
            Err(source) => Err(Error::Io { action: "reading a snapshot", file: self.what.clone(), source }),
        }
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let mut bytes = [0; 4];
        self.take(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    /// The next record, or `None` at the end of the records once the CRC matched.
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        let key_len = self.u32()?;
        if key_len == END_OF_RECORDS {
            let expected = self.crc;
            let mut stored = [0; 4];
            self.take(&mut stored)?;
            if u32::from_le_bytes(stored) != expected {
                return Err(self.corrupt("its CRC-32C does not match".into()));
            }
            if !self
                .input
                .fill_buf()
                .map_err(|source| Error::Io { action: "reading a snapshot", file: self.what.clone(), source })?
                .is_empty()
            {
                return Err(self.corrupt("bytes follow its CRC".into()));
            }
            return Ok(None);
        }
        if key_len as usize > MAX_KEY_BYTES {
            return Err(self.corrupt(format!("a key of {key_len} bytes")));
        }
        let mut key = vec![0; key_len as usize];
        self.take(&mut key)?;
        let value_len = self.u32()?;
        if value_len as usize > mtrdb::MAX_VALUE_BYTES {
            return Err(self.corrupt(format!("a value of {value_len} bytes")));
        }
        let mut value = vec![0; value_len as usize];
        self.take(&mut value)?;
        Ok(Some((key, value)))
    }
}
