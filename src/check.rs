//! The full structural check behind [`crate::Db::check`].
//!
//! Walks the catalog tree, then every tree it names (each keyspace, and each dropped keyspace
//! whose pages are still being freed), and verifies, failing with [`Error::CheckFailed`] at the
//! first violation: every page's checksum and structure (through the page reader); each node at
//! the level its parent implies, all leaves at level 0; keys strictly ascending and inside the
//! fences their ancestors' separators set; child ids in range; leaves linked left to right in key
//! order, the last with no right sibling; overflow chains of exactly their value's length; each
//! keyspace's entry count as the catalog records it; the free list made of free pages; and every
//! page id below `page_count` used exactly once (meta, tree, overflow or free), so no page is lost
//! or shared.
//!
//! This module only reads; it owns no state.

use crate::catalog::{self, Entry};
use crate::error::{Error, Result};
use crate::page::{self, LeafValue, Node, PageId, PageKind};

/// What [`crate::Db::check`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckReport {
    /// Levels of the default keyspace's tree (1 when its root is a leaf).
    pub height: u32,
    /// Entries (keys) of the default keyspace.
    pub entries: u64,
    /// Page ids in use or free.
    pub page_count: u32,
    /// Leaf pages, in every tree.
    pub leaf_pages: u64,
    /// Branch pages, in every tree.
    pub branch_pages: u64,
    /// Overflow pages.
    pub overflow_pages: u64,
    /// Pages on the free list.
    pub free_pages: u64,
    /// Average fill of the default keyspace's nodes at each level (index 0: leaves), as used /
    /// usable bytes.
    pub fill_by_level: Vec<f64>,
    /// The named keyspaces, by name.
    pub keyspaces: Vec<KeyspaceReport>,
    /// Pages of the catalog tree.
    pub catalog_pages: u64,
    /// Pages of dropped keyspaces not freed yet.
    pub dropped_pages: u64,
}

/// One named keyspace, as [`crate::Db::check`] found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyspaceReport {
    /// Its name.
    pub name: String,
    /// Entries (keys).
    pub entries: u64,
    /// Levels of its tree.
    pub height: u32,
    /// Leaf, branch and overflow pages.
    pub pages: u64,
}

/// A node to visit: page, level, low fence, high fence.
type Visit = (PageId, u32, Option<Vec<u8>>, Option<Vec<u8>>);

fn violation(page_id: PageId, detail: impl Into<String>) -> Error {
    Error::CheckFailed { page_id, detail: detail.into() }
}

/// What one tree's walk found.
#[derive(Default)]
struct TreeWalk {
    height: u32,
    entries: u64,
    pages: u64,
    fill_by_level: Vec<f64>,
    /// The leaf entries, when asked for (the catalog's).
    cells: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Page ids and who claimed them.
struct Claims {
    used: Vec<bool>,
    page_count: u32,
}

impl Claims {
    fn claim(&mut self, page_id: PageId, what: &str) -> Result<()> {
        let page_count = self.page_count;
        match self.used.get_mut(page_id as usize) {
            None => Err(violation(page_id, format!("{what} page id is beyond page_count {page_count}"))),
            Some(true) => Err(violation(page_id, format!("{what} page is reachable twice"))),
            Some(slot) => {
                *slot = true;
                Ok(())
            }
        }
    }
}

/// Checks every tree in the file whose pages `read_page` returns (validated images).
pub(crate) fn check_tree(
    page_size: usize,
    mut read_page: impl FnMut(PageId) -> Result<Vec<u8>>,
) -> Result<CheckReport> {
    let meta_page = read_page(page::META_PAGE_ID)?;
    if page::header(&meta_page).kind != PageKind::Meta as u8 {
        return Err(violation(0, "page 0 is not the meta page"));
    }
    let meta = page::meta_state(&meta_page);
    let page_count = meta.page_count;
    let mut claims = Claims { used: vec![false; page_count as usize], page_count };
    claims.used[0] = true;
    let mut report = CheckReport { page_count, ..CheckReport::default() };
    let catalog_walk = walk_tree(page_size, &mut read_page, &mut claims, &mut report, meta.catalog_root, true)?;
    report.catalog_pages = catalog_walk.pages;
    let mut default_seen = false;
    for (key, value) in &catalog_walk.cells {
        let entry = catalog::decode(key, value).map_err(|e| violation(meta.catalog_root, e.to_string()))?;
        match entry {
            Entry::Live { name, id, root, entries } => {
                if id >= meta.next_tree_id {
                    return Err(violation(
                        root,
                        format!("keyspace {name:?} has id {id}, not below {}", meta.next_tree_id),
                    ));
                }
                let walk = walk_tree(page_size, &mut read_page, &mut claims, &mut report, root, false)?;
                if walk.entries != entries {
                    return Err(violation(
                        root,
                        format!("keyspace {name:?} holds {} entries, its catalog entry says {entries}", walk.entries),
                    ));
                }
                if name.is_empty() {
                    default_seen = id == catalog::DEFAULT_TREE_ID && root == catalog::DEFAULT_ROOT;
                    report.height = walk.height;
                    report.entries = walk.entries;
                    report.fill_by_level = walk.fill_by_level;
                } else {
                    report.keyspaces.push(KeyspaceReport { name, entries, height: walk.height, pages: walk.pages });
                }
            }
            Entry::Dropped { root, .. } => {
                let walk = walk_tree(page_size, &mut read_page, &mut claims, &mut report, root, false)?;
                report.dropped_pages += walk.pages;
            }
        }
    }
    if !default_seen {
        return Err(violation(meta.catalog_root, "the catalog has no default keyspace at its fixed root"));
    }
    let mut next = meta.free_head;
    while next != 0 {
        claims.claim(next, "free")?;
        let bytes = read_page(next)?;
        if page::header(&bytes).kind != PageKind::Free as u8 {
            return Err(violation(next, "the free list reaches a page that is not free"));
        }
        report.free_pages += 1;
        next = page::header(&bytes).link.get();
    }
    if let Some(lost) = claims.used.iter().position(|in_use| !in_use) {
        return Err(violation(
            lost as PageId,
            "page is neither in a tree, an overflow chain nor the free list (leaked)",
        ));
    }
    Ok(report)
}

/// Walks the tree at `root`: claims its pages and its overflow chains' and checks them.
fn walk_tree(
    page_size: usize,
    read_page: &mut impl FnMut(PageId) -> Result<Vec<u8>>,
    claims: &mut Claims,
    report: &mut CheckReport,
    root: PageId,
    keep_cells: bool,
) -> Result<TreeWalk> {
    claims.claim(root, "root")?;
    let root_bytes = read_page(root)?;
    let root_node = Node::new(&root_bytes).ok_or_else(|| violation(root, "a tree's root is not a node"))?;
    let height = u32::from(root_node.header().level) + 1;
    let mut walk = TreeWalk { height, ..TreeWalk::default() };
    let usable = page::usable_bytes(page_size) as f64;
    let mut fill_sum = vec![0f64; height as usize];
    let mut fill_count = vec![0u64; height as usize];
    let mut leaves_in_order: Vec<(PageId, PageId)> = Vec::new();
    let mut overflow_chains: Vec<(PageId, PageId, u32)> = Vec::new();
    // Depth-first, left to right: (page, level, low fence, high fence).
    let mut stack: Vec<Visit> = vec![(root, height - 1, None, None)];
    while let Some((page_id, level, low, high)) = stack.pop() {
        let bytes = read_page(page_id)?;
        let node = Node::new(&bytes).ok_or_else(|| violation(page_id, "a tree page that is not a node"))?;
        if u32::from(node.header().level) != level {
            return Err(violation(
                page_id,
                format!("node at level {}, its parent implies {level}", node.header().level),
            ));
        }
        walk.pages += 1;
        fill_sum[level as usize] += (node.used_bytes() - page::HEADER_BYTES) as f64 / usable;
        fill_count[level as usize] += 1;
        for index in 0..node.len() {
            let key = node.key(index);
            if low.as_deref().is_some_and(|low| key < low) || high.as_deref().is_some_and(|high| key >= high) {
                return Err(violation(page_id, format!("key {index} lies outside the fences its parent sets")));
            }
        }
        if node.is_leaf() {
            report.leaf_pages += 1;
            walk.entries += node.len() as u64;
            leaves_in_order.push((page_id, node.link()));
            for index in 0..node.len() {
                match node.leaf_value(index) {
                    LeafValue::Overflow { len, first_page } => overflow_chains.push((page_id, first_page, len)),
                    LeafValue::Inline(value) if keep_cells => {
                        walk.cells.push((node.key(index).to_vec(), value.to_vec()))
                    }
                    LeafValue::Inline(_) => {}
                }
            }
            continue;
        }
        report.branch_pages += 1;
        // Push children right to left so they pop left to right.
        for index in (0..=node.len()).rev() {
            let child = node.child(index);
            claims.claim(child, "child")?;
            let child_low = if index == 0 { low.clone() } else { Some(node.key(index - 1).to_vec()) };
            let child_high = if index == node.len() { high.clone() } else { Some(node.key(index).to_vec()) };
            stack.push((child, level - 1, child_low, child_high));
        }
    }
    for pair in leaves_in_order.windows(2) {
        if pair[0].1 != pair[1].0 {
            return Err(violation(
                pair[0].0,
                format!("leaf links to {}, but the next leaf in key order is {}", pair[0].1, pair[1].0),
            ));
        }
    }
    if let Some(&(last, link)) = leaves_in_order.last() {
        if link != 0 {
            return Err(violation(last, "the last leaf has a right sibling"));
        }
    }
    let capacity = page::overflow_capacity(page_size);
    for (leaf, first_page, len) in overflow_chains {
        let mut next = first_page;
        let mut total = 0usize;
        while next != 0 {
            claims.claim(next, "overflow")?;
            let bytes = read_page(next)?;
            let header = page::header(&bytes);
            if header.kind != PageKind::Overflow as u8 {
                return Err(violation(
                    next,
                    format!("overflow chain of a value in leaf {leaf} reaches a page that is not an overflow page"),
                ));
            }
            total += header.content_start.get() as usize;
            report.overflow_pages += 1;
            walk.pages += 1;
            next = header.link.get();
            if total > len as usize + capacity {
                break;
            }
        }
        if total != len as usize {
            return Err(violation(
                first_page,
                format!("overflow chain holds {total} bytes, its cell in leaf {leaf} says {len}"),
            ));
        }
    }
    walk.fill_by_level = fill_sum
        .iter()
        .zip(&fill_count)
        .map(|(sum, &count)| if count == 0 { 0.0 } else { sum / count as f64 })
        .collect();
    Ok(walk)
}
