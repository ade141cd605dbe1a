//! Log capacity has an upper bound, [`MAX_CAPACITY_BYTES`]: `LogFile::create` refuses a larger
//! ring with a typed error, and `LogFile::open` treats a header claiming one as "not a log",
//! even a sealed header in a file long enough for it.
//!
//! Guards against `RING_OFFSET + capacity` overflowing (a panic, or with overflow checks off a
//! wrapped file length) when a damaged or hostile header claims a capacity near 2^64, which a
//! fuzzer found, and against the bound itself being off by one.

use std::io;
use std::sync::{Arc, Mutex};

use mtr::layout::{BLOCK_BYTES, MAX_CAPACITY_BYTES, MIN_CAPACITY_BYTES, RING_OFFSET};
use mtr::{Error, LogFile, StorageFile};

const LOG_ID: u64 = 0x6361_7061_6369_7479;

/// A file that keeps only its header and checkpoint blocks in memory and reports whatever
/// length it was given, so a header can promise a ring of any size without storage behind it.
struct HeaderOnlyFile {
    blocks: Mutex<Vec<u8>>,
    len: Mutex<u64>,
}

impl HeaderOnlyFile {
    fn new(len: u64) -> Arc<HeaderOnlyFile> {
        Arc::new(HeaderOnlyFile { blocks: Mutex::new(vec![0; RING_OFFSET as usize]), len: Mutex::new(len) })
    }

    fn range(buf_len: usize, offset: u64) -> io::Result<std::ops::Range<usize>> {
        let end = offset.checked_add(buf_len as u64).filter(|&end| end <= RING_OFFSET);
        let end = end.ok_or_else(|| io::Error::other("only the header blocks are kept"))?;
        Ok(offset as usize..end as usize)
    }
}

impl StorageFile for HeaderOnlyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let range = Self::range(buf.len(), offset)?;
        buf.copy_from_slice(&self.blocks.lock().unwrap()[range]);
        Ok(())
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let range = Self::range(buf.len(), offset)?;
        self.blocks.lock().unwrap()[range].copy_from_slice(buf);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(*self.len.lock().unwrap())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        *self.len.lock().unwrap() = len;
        Ok(())
    }
}

/// The largest multiple of the block size: the most extreme capacity a header can claim that
/// passes the other checks.
const HUGEST: u64 = u64::MAX - (u64::MAX % BLOCK_BYTES);

#[test]
fn create_refuses_a_capacity_over_the_bound() {
    for capacity in [MAX_CAPACITY_BYTES + BLOCK_BYTES, HUGEST] {
        let file = HeaderOnlyFile::new(0);
        let result = LogFile::create(file.clone(), capacity, LOG_ID);
        assert!(matches!(result, Err(Error::Misuse(_))), "capacity {capacity}: {result:?}");
        assert_eq!(file.len().unwrap(), 0, "capacity {capacity}: the refused file was sized");
    }
    let file = HeaderOnlyFile::new(0);
    let log = LogFile::create(file.clone(), MAX_CAPACITY_BYTES, LOG_ID).expect("the bound itself is allowed");
    assert_eq!(log.capacity(), MAX_CAPACITY_BYTES);
    assert_eq!(file.len().unwrap(), RING_OFFSET + MAX_CAPACITY_BYTES);
}

/// A log laid out with the smallest ring whose sealed header then claims `capacity`, in a
/// file reporting `len` bytes.
fn log_claiming(capacity: u64, len: u64) -> Arc<HeaderOnlyFile> {
    let file = HeaderOnlyFile::new(0);
    LogFile::create(file.clone(), MIN_CAPACITY_BYTES, LOG_ID).expect("creating a log");
    {
        let mut blocks = file.blocks.lock().unwrap();
        blocks[16..24].copy_from_slice(&capacity.to_le_bytes());
        let crc = crc32c::crc32c(&blocks[..60]);
        blocks[60..64].copy_from_slice(&crc.to_le_bytes());
    }
    file.set_len(len).unwrap();
    file
}

#[test]
fn open_treats_a_capacity_over_the_bound_as_not_a_log() {
    for capacity in [MAX_CAPACITY_BYTES + BLOCK_BYTES, HUGEST] {
        // As long as the file can be: nothing but the bound refuses this header.
        let result = LogFile::open(log_claiming(capacity, u64::MAX));
        assert!(matches!(result, Err(Error::NotALog { .. })), "capacity {capacity}: {result:?}");
    }
    let log = LogFile::open(log_claiming(MAX_CAPACITY_BYTES, RING_OFFSET + MAX_CAPACITY_BYTES))
        .expect("a log with a ring of exactly the bound opens");
    assert_eq!(log.capacity(), MAX_CAPACITY_BYTES);
    assert_eq!(log.latest_checkpoint().expect("the checkpoint written at creation").number, 1);
}
