//! Explains a `page` input: decodes it as the harness does and prints the page header, whether
//! the page validates, and each record's apply result. For diagnosing a finding:
//! `cargo run --manifest-path fuzz/Cargo.toml --example explain_page -- ARTIFACT`.

use mtrdb::page;
use mtrdb_fuzz::input::Reader;
fn main() {
    let data = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    let mut input = Reader::new(&data);
    let flags = input.u8();
    let page_size = if flags & 1 == 1 { 65536 } else { 4096 };
    let mut page_id = input.u32();
    let n = input.u8() % 9;
    let recs: Vec<(u8, Vec<u8>)> = (0..n)
        .map(|_| {
            let b = input.u8();
            let k = if b < 0xF0 { 16 + b % 11 } else { b };
            (k, input.blob(page_size + 64).to_vec())
        })
        .collect();
    let mut bytes = input.rest().to_vec();
    bytes.resize(page_size, 0);
    if flags & 2 == 2 {
        page_id = page::header(&bytes).page_id.get();
    }
    if flags & 4 == 4 {
        page::seal(page_id, &mut bytes);
    }
    println!(
        "flags {flags} page_id {page_id} header {:?} validate {:?}",
        page::header(&bytes),
        page::validate(page_id, &bytes)
    );
    for (k, p) in recs {
        println!("record kind {k} payload {} bytes {:?}", p.len(), &p[..p.len().min(40)]);
        let mut after = bytes.clone();
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mtrdb::redo::apply(k, page_id, &p, &mut after)));
        println!(
            "  -> {:?}; validate after {:?}",
            r.as_ref().map(|r| r.as_ref().map(|_| ())),
            page::validate(page_id, &after)
        );
        if matches!(r, Ok(Ok(()))) {
            bytes = after;
        }
    }
}
