//! Misuse is refused, not obeyed: an empty mtr, an mtr larger than the ring, a checkpoint ahead
//! of the durable log or behind the previous one, a resume before the checkpoint, and a log of an
//! unusable capacity are each an error that leaves the log working (a caller's mistake must not
//! poison the log or corrupt what it holds).
//!
//! Guards against an `append` that would wait forever for space that can never be freed (an mtr
//! larger than the ring), a checkpoint that would let recovery skip redo not yet durable, and a
//! resume that would move the stream backwards.

mod common;

use common::{append, scan, MtrSpec, TempLog, LOG_ID};
use mtr::layout::{BLOCK_BYTES, MIN_CAPACITY_BYTES};
use mtr::{Error, Log, Lsn, MtrBuf, ScanMode, FIRST_ENGINE_KIND};

fn mtr(sequence: u64) -> MtrSpec {
    MtrSpec::single(FIRST_ENGINE_KIND, sequence, vec![3; 50], 0)
}

#[test]
fn refused_calls_leave_the_log_working() {
    let (temp, log_file) = TempLog::create(MIN_CAPACITY_BYTES);
    let log = Log::resume(log_file, Lsn::ZERO).expect("resume");
    let first = append(&log, &mtr(1));

    assert!(matches!(log.append(&MtrBuf::new(), 0), Err(Error::Misuse(_))));
    let mut too_large = MtrBuf::new();
    too_large.push(FIRST_ENGINE_KIND, 0, &vec![0; MIN_CAPACITY_BYTES as usize]);
    match log.append(&too_large, 0) {
        Err(Error::MtrTooLarge { frame_bytes, capacity_bytes }) => {
            assert!(frame_bytes > capacity_bytes);
            assert_eq!(capacity_bytes, MIN_CAPACITY_BYTES);
        }
        other => panic!("expected MtrTooLarge, got {other:?}"),
    }
    // Not yet durable: a checkpoint there would let recovery start past redo it never saw.
    assert!(matches!(log.checkpoint(first.end_lsn), Err(Error::Misuse(_))));
    log.flush_all().expect("flush");
    log.checkpoint(first.end_lsn).expect("checkpoint");
    assert!(matches!(log.checkpoint(first.start_lsn), Err(Error::Misuse(_))));
    assert_eq!(log.poisoned(), None);

    let second = append(&log, &mtr(2));
    log.flush_all().expect("flush");
    drop(log);
    let log_file = temp.reopen();
    assert_eq!(scan(&log_file, ScanMode::Strict).mtrs, vec![second]);
    // Recovery cannot end before the checkpoint it started from.
    assert!(matches!(Log::resume(log_file, first.start_lsn), Err(Error::Misuse(_))));
}

#[test]
fn unusable_capacities_are_refused() {
    let temp = TempLog::new();
    for (name, capacity_bytes) in [("small.log", MIN_CAPACITY_BYTES - BLOCK_BYTES), ("odd.log", MIN_CAPACITY_BYTES + 1)]
    {
        let result = mtr::LogFile::create(temp.new_file(name), capacity_bytes, LOG_ID);
        assert!(matches!(result, Err(Error::Misuse(_))), "{capacity_bytes}: {result:?}");
    }
}
