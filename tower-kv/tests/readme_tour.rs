//! The README's "A short tour" is the text of `src/tour.md`, whose snippets the crate compiles
//! as doctests (`no_run` there, `ignore` in the README, which a crate without tower-kv also
//! compiles). So the README shows only code that builds against this crate.

#[test]
fn readme_tour_is_the_compiled_tour() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("## A short tour")
        .expect("the README has a short tour");
    let end = start
        + readme[start..]
            .find("### Store URLs")
            .expect("followed by Store URLs");
    let tour = include_str!("../src/tour.md").replace("```rust,no_run", "```rust,ignore");
    assert_eq!(
        &readme[start..end],
        tour,
        "README.md's \"A short tour\" differs from tower-kv/src/tour.md: edit tour.md (its \
         snippets are compiled) and copy it over, with `rust,ignore` fences"
    );
}
