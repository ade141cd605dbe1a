//! The catalog: the B+tree that names every keyspace, and the in-memory table of live keyspaces
//! built from it.
//!
//! The catalog is a tree like any other (its root is the meta page's `catalog_root`), changed
//! only through a `BatchWriter`, so every change to it is a logged mtr of the batch that makes
//! it: creating or dropping a keyspace is atomic and durable like any batch, and a batch that
//! spans keyspaces updates their entry counts in its last mtr.
//!
//! # Catalog entries
//!
//! | key                           | value (little-endian)                                   |
//! |-------------------------------|---------------------------------------------------------|
//! | `b'k'`, then the name (UTF-8, 1..=255 bytes; none for the default keyspace) | `id: u64`, `root: u32`, `entries: u64` (20 bytes): a live keyspace |
//! | `b'd'`, then `id: u64` | `root: u32` (4 bytes): a dropped keyspace whose pages are still being freed |
//!
//! A keyspace keeps its root page and its id for its whole life; ids are never reused (the meta
//! page's `next_tree_id`), so a handle to a dropped keyspace can never reach the one that reuses
//! its root page. The default keyspace has id 1 and root page 2 (page 1 is the catalog's root) and
//! cannot be dropped.
//!
//! This module owns the catalog's entries and names; it must not change a page itself (it asks
//! the `BatchWriter`) nor know the node layout.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::btree::{self, BatchWriter, PageSource};
use crate::error::{Error, Result};
use crate::page::{MetaState, PageId};

/// The catalog's root page in a new database.
pub(crate) const CATALOG_ROOT: PageId = 1;
/// The default keyspace's root page.
pub(crate) const DEFAULT_ROOT: PageId = 2;
/// The default keyspace's id.
pub(crate) const DEFAULT_TREE_ID: u64 = 1;
/// The longest keyspace name, in bytes.
pub const MAX_KEYSPACE_NAME_BYTES: usize = 255;

const LIVE: u8 = b'k';
const DROPPED: u8 = b'd';
const LIVE_VALUE_BYTES: usize = 20;
/// Where `entries` lies in a live entry's value.
const LIVE_COUNT_OFFSET: usize = 12;

/// A live keyspace as the catalog records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyspaceInfo {
    /// Empty for the default keyspace.
    pub name: String,
    pub id: u64,
    /// Its root when this was made. A compaction may move a keyspace's root since: the table
    /// ([`Keyspaces::root_of`]) has the current one, and a handle is resolved through it.
    pub root: PageId,
}

impl KeyspaceInfo {
    pub(crate) fn default_keyspace() -> KeyspaceInfo {
        KeyspaceInfo { name: String::new(), id: DEFAULT_TREE_ID, root: DEFAULT_ROOT }
    }

    /// Its key in the catalog.
    pub(crate) fn catalog_key(&self) -> Vec<u8> {
        live_key(&self.name)
    }
}

/// Checks a keyspace name: 1..=255 bytes (a `&str` is UTF-8 already).
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_KEYSPACE_NAME_BYTES {
        return Err(Error::KeyspaceName { name: name.to_string(), detail: "must be 1 to 255 bytes of UTF-8".into() });
    }
    Ok(())
}

pub(crate) fn live_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(LIVE);
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn dropped_key(id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(DROPPED);
    key.extend_from_slice(&id.to_le_bytes());
    key
}

pub(crate) fn encode_live(id: u64, root: PageId, entries: u64) -> [u8; LIVE_VALUE_BYTES] {
    let mut value = [0u8; LIVE_VALUE_BYTES];
    value[..8].copy_from_slice(&id.to_le_bytes());
    value[8..12].copy_from_slice(&root.to_le_bytes());
    value[LIVE_COUNT_OFFSET..].copy_from_slice(&entries.to_le_bytes());
    value
}

/// A live entry's `(id, root, entries)`.
pub(crate) fn decode_live(value: &[u8]) -> Option<(u64, PageId, u64)> {
    if value.len() != LIVE_VALUE_BYTES {
        return None;
    }
    Some((
        u64::from_le_bytes(value[..8].try_into().ok()?),
        u32::from_le_bytes(value[8..12].try_into().ok()?),
        u64::from_le_bytes(value[12..].try_into().ok()?),
    ))
}

/// One catalog entry, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Live { name: String, id: u64, root: PageId, entries: u64 },
    Dropped { id: u64, root: PageId },
}

fn corrupt(detail: impl Into<String>) -> Error {
    Error::corrupt(CATALOG_ROOT, detail)
}

/// Decodes one catalog entry.
pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<Entry> {
    match key.split_first() {
        Some((&LIVE, name)) => {
            let name = std::str::from_utf8(name).map_err(|_| corrupt("a keyspace name that is not UTF-8"))?;
            let (id, root, entries) =
                decode_live(value).ok_or_else(|| corrupt("a keyspace entry of the wrong size"))?;
            Ok(Entry::Live { name: name.to_string(), id, root, entries })
        }
        Some((&DROPPED, id)) if id.len() == 8 && value.len() == 4 => Ok(Entry::Dropped {
            id: u64::from_le_bytes(id.try_into().map_err(|_| corrupt("dropped id"))?),
            root: u32::from_le_bytes(value.try_into().map_err(|_| corrupt("dropped root"))?),
        }),
        _ => Err(corrupt("an entry the catalog does not know")),
    }
}

/// Every catalog entry, in key order, read through `source`.
pub(crate) fn entries(source: &impl PageSource, catalog_root: PageId) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut low = Bound::Unbounded;
    let mut from_leaf = None;
    loop {
        let chunk = btree::chunk_forward(source, catalog_root, &low, &Bound::Unbounded, from_leaf)?;
        for entry in &chunk.entries {
            let key = &chunk.leaf[entry.key.clone()];
            let value = match &entry.value {
                btree::ChunkValue::Inline(range) => &chunk.leaf[range.clone()],
                btree::ChunkValue::Overflow { .. } => return Err(corrupt("a catalog value in an overflow chain")),
            };
            out.push(decode(key, value)?);
            low = Bound::Excluded(key.to_vec());
        }
        if chunk.exhausted {
            return Ok(out);
        }
        from_leaf = chunk.next_leaf;
    }
}

/// The live keyspaces, by name and by id: what handles are checked against (a handle whose id is
/// no longer here names a dropped keyspace).
#[derive(Default)]
pub(crate) struct Keyspaces {
    by_name: HashMap<String, Arc<KeyspaceInfo>>,
    live_ids: HashMap<u64, PageId>,
    /// Dropped keyspaces whose pages are not all freed yet: (id, root).
    pub dropped: Vec<(u64, PageId)>,
}

impl Keyspaces {
    /// Builds the table from the catalog's entries; checks that the default keyspace is there
    /// and that no id or root appears twice.
    pub(crate) fn load(entries: &[Entry], meta: &MetaState) -> Result<Keyspaces> {
        let mut table = Keyspaces::default();
        let mut roots = std::collections::HashSet::new();
        for entry in entries {
            let (id, root) = match entry {
                Entry::Live { name, id, root, .. } => {
                    table
                        .by_name
                        .insert(name.clone(), Arc::new(KeyspaceInfo { name: name.clone(), id: *id, root: *root }));
                    (*id, *root)
                }
                Entry::Dropped { id, root } => {
                    table.dropped.push((*id, *root));
                    (*id, *root)
                }
            };
            if id >= meta.next_tree_id || root == 0 || root >= meta.page_count || !roots.insert(root) {
                return Err(corrupt(format!("keyspace {id} with root {root} is implausible or shares its root")));
            }
            if table.live_ids.insert(id, root).is_some() {
                return Err(corrupt(format!("keyspace id {id} appears twice")));
            }
        }
        for (id, _) in &table.dropped {
            table.live_ids.remove(id);
        }
        match table.by_name.get("") {
            Some(info) if info.id == DEFAULT_TREE_ID && info.root == DEFAULT_ROOT => Ok(table),
            _ => Err(corrupt("the default keyspace's entry is missing or moved")),
        }
    }

    /// The live keyspace called `name` (`""`: the default one).
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<KeyspaceInfo>> {
        self.by_name.get(name)
    }

    /// Whether `info` still names a live keyspace (ids are never reused).
    pub(crate) fn is_live(&self, info: &KeyspaceInfo) -> bool {
        self.live_ids.contains_key(&info.id)
    }

    /// The current root of `info`'s tree, if it is live.
    pub(crate) fn root_of(&self, info: &KeyspaceInfo) -> Option<PageId> {
        self.root_of_id(info.id)
    }

    /// The current root of keyspace `id`'s tree, if it is live.
    pub(crate) fn root_of_id(&self, id: u64) -> Option<PageId> {
        self.live_ids.get(&id).copied()
    }

    /// Records that keyspace `id`'s root moved to `root` (compaction).
    pub(crate) fn set_root(&mut self, id: u64, root: PageId) {
        if let Some(current) = self.live_ids.get_mut(&id) {
            *current = root;
        }
        if let Some(info) = self.by_name.values_mut().find(|info| info.id == id) {
            *info = Arc::new(KeyspaceInfo { name: info.name.clone(), id, root });
        }
    }

    /// Names of the live keyspaces other than the default, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().filter(|name| !name.is_empty()).cloned().collect();
        names.sort();
        names
    }

    pub(crate) fn add(&mut self, info: Arc<KeyspaceInfo>) {
        self.live_ids.insert(info.id, info.root);
        self.by_name.insert(info.name.clone(), info);
    }

    pub(crate) fn remove(&mut self, name: &str) -> Option<Arc<KeyspaceInfo>> {
        let info = self.by_name.remove(name)?;
        let root = self.live_ids.remove(&info.id).unwrap_or(info.root);
        self.dropped.push((info.id, root));
        Some(info)
    }
}

/// Adds `delta` to the entry count the catalog records for `info`, in the open batch.
pub(crate) fn add_entries(writer: &mut BatchWriter<'_>, info: &KeyspaceInfo, delta: i64) -> Result<()> {
    let catalog_root = writer.catalog_root();
    let key = info.catalog_key();
    let value =
        writer.get(catalog_root, &key)?.ok_or_else(|| corrupt(format!("no entry for keyspace {:?}", info.name)))?;
    let (id, _, entries) = decode_live(&value).ok_or_else(|| corrupt("a keyspace entry of the wrong size"))?;
    if id != info.id {
        return Err(corrupt(format!("the entry of keyspace {:?} names another tree", info.name)));
    }
    let entries = entries
        .checked_add_signed(delta)
        .ok_or_else(|| corrupt(format!("keyspace {:?} would hold a negative number of entries", info.name)))?;
    // Only the count's 8 bytes, in the batch's last mtr beside its last change: no mtr of its
    // own, and a record of about 15 bytes.
    writer.patch_value(catalog_root, &key, LIVE_COUNT_OFFSET, &entries.to_le_bytes())
}

/// The entry count the catalog records for `info`.
pub(crate) fn entry_count(
    source: &impl PageSource,
    catalog_root: PageId,
    info: &KeyspaceInfo,
    page_size: usize,
) -> Result<u64> {
    let value = btree::get(source, catalog_root, &info.catalog_key(), page_size)?
        .ok_or_else(|| corrupt(format!("no entry for keyspace {:?}", info.name)))?;
    let (id, _, entries) = decode_live(&value).ok_or_else(|| corrupt("a keyspace entry of the wrong size"))?;
    if id != info.id {
        return Err(Error::KeyspaceDropped { name: info.name.clone() });
    }
    Ok(entries)
}

/// Creates keyspace `name` (not yet in the catalog) in the open batch: its root and its entry.
pub(crate) fn create(writer: &mut BatchWriter<'_>, name: &str) -> Result<KeyspaceInfo> {
    let (id, root) = writer.create_tree()?;
    writer.insert(writer.catalog_root(), &live_key(name), &encode_live(id, root, 0))?;
    Ok(KeyspaceInfo { name: name.to_string(), id, root })
}

/// Drops `info`, whose tree's root is `root` now, in the open batch: its live entry becomes a
/// dropped one, whose tree is freed later ([`free_dropped`]).
pub(crate) fn drop(writer: &mut BatchWriter<'_>, info: &KeyspaceInfo, root: PageId) -> Result<()> {
    let catalog_root = writer.catalog_root();
    if !writer.remove(catalog_root, &info.catalog_key())? {
        return Err(corrupt(format!("no entry for keyspace {:?}", info.name)));
    }
    writer.insert(catalog_root, &dropped_key(info.id), &root.to_le_bytes())?;
    Ok(())
}

/// Where a live entry's root lies in its value.
const LIVE_ROOT_OFFSET: usize = 8;

/// Moves the root of live keyspace `name` (id `id`) from page `from` to free page `to`, in an mtr
/// of its own in the open batch, if the catalog still names `from` as its root: the root's copy
/// and the catalog entry's root (patched in place) change together. Returns whether it moved;
/// the caller updates the in-memory table once the batch commits.
pub(crate) fn move_root(
    writer: &mut BatchWriter<'_>,
    model: &mut btree::FreeListModel,
    name: &str,
    id: u64,
    from: PageId,
    to: PageId,
) -> Result<bool> {
    let catalog_root = writer.catalog_root();
    let key = live_key(name);
    let Some(value) = writer.get(catalog_root, &key)? else { return Ok(false) };
    match decode_live(&value) {
        Some((entry_id, root, _)) if entry_id == id && root == from => {}
        _ => return Ok(false),
    }
    writer.relocate_root(model, from, to, |writer| {
        writer.patch_value(catalog_root, &key, LIVE_ROOT_OFFSET, &to.to_le_bytes())
    })?;
    Ok(true)
}

/// Pages a batch freeing a dropped keyspace frees at least, when the tree has them (more by at
/// most one overflow chain): bounds the memory and the log space one such batch takes.
pub const FREE_PAGES_PER_BATCH: u64 = 1024;

/// Frees a part of the dropped tree `(id, root)` in the open batch, and removes its catalog
/// entry with its root. Returns whether it is gone.
pub(crate) fn free_dropped(writer: &mut BatchWriter<'_>, id: u64, root: PageId) -> Result<bool> {
    // The catalog, not only the caller's table, must still name this tree: freeing a root page
    // that was freed and reused would free a live keyspace's pages.
    let recorded = writer.get(writer.catalog_root(), &dropped_key(id))?;
    if recorded.as_deref() != Some(&root.to_le_bytes()[..]) {
        return Err(corrupt(format!("dropped keyspace {id} with root {root} is not in the catalog")));
    }
    let gone = writer.free_tree_part(root, FREE_PAGES_PER_BATCH)?;
    if gone && !writer.remove(writer.catalog_root(), &dropped_key(id))? {
        return Err(corrupt(format!("no entry for dropped keyspace {id}")));
    }
    Ok(gone)
}
