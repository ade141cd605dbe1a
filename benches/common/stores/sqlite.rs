//! The SQLite adapter (WAL mode, `synchronous` FULL or NORMAL): one writer connection behind a
//! mutex, one reader connection per session.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::{Scanned, Session, Store, StoreKind};
use crate::common::Entry;

/// SQLite in WAL mode.
pub struct SqliteStore {
    kind: StoreKind,
    path: PathBuf,
    synchronous: &'static str,
    writer: Mutex<rusqlite::Connection>,
}

const SQLITE_INSERT: &str = "INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)";

fn sqlite_connection(path: &Path, synchronous: &str) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).expect("open sqlite");
    connection.busy_timeout(Duration::from_secs(30)).expect("sqlite busy_timeout");
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};
             CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;"
        ))
        .expect("sqlite setup");
    connection
}

impl SqliteStore {
    pub(super) fn open(dir: &Path, kind: StoreKind, synchronous: &'static str) -> SqliteStore {
        let path = dir.join("data.sqlite");
        let writer = Mutex::new(sqlite_connection(&path, synchronous));
        SqliteStore { kind, path, synchronous, writer }
    }
}

impl Store for SqliteStore {
    fn kind(&self) -> StoreKind {
        self.kind
    }

    fn write_batch(&self, entries: &[Entry]) {
        let mut connection = self.writer.lock().expect("sqlite writer lock");
        let txn = connection.transaction().expect("sqlite begin");
        {
            let mut insert = txn.prepare_cached(SQLITE_INSERT).expect("sqlite prepare");
            for entry in entries {
                insert.execute(rusqlite::params![&entry.key[..], &entry.value[..]]).expect("sqlite insert");
            }
        }
        txn.commit().expect("sqlite commit");
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(SqliteSession { store: self, reader: sqlite_connection(&self.path, self.synchronous) })
    }

    fn close(self: Box<Self>) {
        let connection = self.writer.into_inner().expect("sqlite writer lock");
        connection.close().map_err(|(_, error)| error).expect("sqlite close");
    }
}

struct SqliteSession<'a> {
    store: &'a SqliteStore,
    reader: rusqlite::Connection,
}

impl Session for SqliteSession<'_> {
    fn insert_durable(&mut self, key: &[u8], value: &[u8]) {
        let connection = self.store.writer.lock().expect("sqlite writer lock");
        let mut insert = connection.prepare_cached(SQLITE_INSERT).expect("sqlite prepare");
        insert.execute(rusqlite::params![key, value]).expect("sqlite insert");
    }

    fn get(&mut self, key: &[u8]) -> Option<usize> {
        use rusqlite::OptionalExtension;
        let mut select = self.reader.prepare_cached("SELECT v FROM kv WHERE k = ?1").expect("sqlite prepare");
        select.query_row([key], |row| Ok(row.get_ref(0)?.as_blob()?.len())).optional().expect("sqlite get")
    }

    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> Scanned {
        let sql = if forward {
            "SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k ASC LIMIT ?2"
        } else {
            "SELECT k, v FROM kv WHERE k <= ?1 ORDER BY k DESC LIMIT ?2"
        };
        // A negative LIMIT is no limit: `usize::MAX` (a full scan) is -1.
        let limit = i64::try_from(count).unwrap_or(-1);
        let mut select = self.reader.prepare_cached(sql).expect("sqlite prepare");
        let mut rows = select.query(rusqlite::params![start, limit]).expect("sqlite scan");
        let mut scanned = Scanned::default();
        while let Some(row) = rows.next().expect("sqlite scan") {
            let key = row.get_ref(0).and_then(|v| Ok(v.as_blob()?.len())).expect("sqlite key");
            let value = row.get_ref(1).and_then(|v| Ok(v.as_blob()?.len())).expect("sqlite value");
            scanned.add_entry(key + value);
        }
        scanned
    }
}
