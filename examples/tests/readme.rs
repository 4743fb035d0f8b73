//! The README's Rust snippet is the `plan_from_zfs_list` example's code, so it compiles and
//! runs (CI runs the example): the lines between `// ANCHOR: readme` and
//! `// ANCHOR_END: readme` in `plan_from_zfs_list.rs`, unindented, are the README's
//! ```` ```rust ```` block.

const README: &str = include_str!("../../README.md");
const EXAMPLE: &str = include_str!("../plan_from_zfs_list.rs");

/// The text between two marker lines, each line without `indent` leading spaces.
fn region(text: &str, start: &str, end: &str, indent: usize) -> String {
    let from = text.find(start).expect("start marker") + start.len();
    let to = from + text[from..].find(end).expect("end marker");
    let body = &text[from..to];
    let body = &body[body.find('\n').expect("a line after the start marker") + 1..];
    let body = &body[..body.rfind('\n').map_or(0, |i| i + 1)];
    body.lines()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn readme_snippet_is_the_example() {
    let snippet = region(README, "```rust", "```\n", 0);
    let code = region(EXAMPLE, "// ANCHOR: readme", "// ANCHOR_END: readme", 4);
    assert_eq!(
        snippet, code,
        "README.md's Rust snippet differs from the ANCHOR: readme region of \
         examples/plan_from_zfs_list.rs; copy the region (unindented) into the README"
    );
}
