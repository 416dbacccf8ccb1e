//! Unit tests of the splitting rules; the differential proof is in tests/e2e.

use super::*;

fn inputs(names: &[(&str, Dialect)]) -> Vec<FragmentInput> {
    names
        .iter()
        .map(|(n, d)| FragmentInput { name: n.to_string(), dialect: *d, relation: format!("src_{n}"), location: n.to_string() })
        .collect()
}

fn frag(s: &Split, n: &str) -> String {
    s.fragments[n].sql.clone()
}

#[test]
fn anti_join_filter_is_not_pushed_into_the_null_supplying_side() {
    let s = split(
        &["select a.id from a left join b on b.id = a.id where b.id is null and a.x > 3"],
        &inputs(&[("a", Dialect::Postgres), ("b", Dialect::Postgres)]),
        Dialect::Postgres,
    );
    assert_eq!(frag(&s, "a"), "select id, x from src_a where (a.x > 3)".replace("a.x", "x"));
    assert_eq!(frag(&s, "b"), "select id from src_b");
    assert!(s.predicates.iter().any(|p| p.predicate == "b.id IS NULL" && p.pushed_to.is_none()));
}

#[test]
fn on_clause_of_the_null_supplying_side_is_pushed() {
    let s = split(
        &["select a.id, b.v from a left join b on b.id = a.id and b.v = 1 and a.x = 2"],
        &inputs(&[("a", Dialect::Duckdb), ("b", Dialect::Duckdb)]),
        Dialect::Postgres,
    );
    assert_eq!(frag(&s, "b"), "select id, v from src_b where (v = 1)");
    assert_eq!(frag(&s, "a"), "select id, x from src_a");
}

#[test]
fn self_join_gets_an_or_of_its_filters() {
    let s = split(
        &["select x.id from t x join t y on x.p = y.id where x.k = 1 and y.k = 2"],
        &inputs(&[("t", Dialect::Postgres)]),
        Dialect::Postgres,
    );
    // Each occurrence also needs its partner (a semi-join on the same relation).
    assert_eq!(
        frag(&s, "t"),
        "select id, k, p from src_t dvt_f where ((k = 1) and (exists (select 1 from src_t dvt_semi where dvt_semi.id = dvt_f.p))) or ((k = 2) and (exists (select 1 from src_t dvt_semi where dvt_semi.p = dvt_f.id)))"
    );
    let s =
        split(&["select x.id from t x left join t y on x.p = y.id where x.k = 1"], &inputs(&[("t", Dialect::Postgres)]), Dialect::Postgres);
    assert_eq!(frag(&s, "t"), "select id, k, p from src_t");
}

#[test]
fn limits_only_where_they_cannot_change_the_result() {
    let one = inputs(&[("t", Dialect::Sqlite)]);
    let s = split(&["select id, v from t where v > 1 order by id limit 5"], &one, Dialect::Postgres);
    assert_eq!(frag(&s, "t"), "select id, v from src_t where (v > 1) order by id asc nulls last limit 5");
    for q in [
        "select v, count(*) from t group by v order by v limit 5",
        "select distinct v from t order by v limit 5",
        "select id, row_number() over (order by v) from t order by id limit 5",
        "select id from t where v > 1 or id like 'x%' order by id limit 5",
    ] {
        let s = split(&[q], &one, Dialect::Postgres);
        assert!(!frag(&s, "t").contains("limit"), "{q} -> {}", frag(&s, "t"));
    }
    // Collation-dependent sources keep the limit in the remainder.
    let s = split(&["select id from t order by id limit 5"], &inputs(&[("t", Dialect::Postgres)]), Dialect::Postgres);
    assert!(!frag(&s, "t").contains("limit"));
}

#[test]
fn filters_in_a_cte_stay_in_its_scope() {
    let s = split(
        &["with c as (select id, v from t where v = 1) select * from c where c.id > 2"],
        &inputs(&[("t", Dialect::Postgres)]),
        Dialect::Postgres,
    );
    assert_eq!(frag(&s, "t"), "select id, v from src_t where (v = 1)");
    assert!(s.predicates.iter().any(|p| p.predicate == "c.id > 2" && p.pushed_to.is_none()));
}

#[test]
fn mysql_gets_no_string_predicates_and_unparsable_sql_falls_back() {
    let s = split(&["select id from t where name = 'x' and id = 3"], &inputs(&[("t", Dialect::Mysql)]), Dialect::Postgres);
    assert_eq!(frag(&s, "t"), "select id, name from src_t where (id = 3)");
    let s = split(&["select ((( from"], &inputs(&[("t", Dialect::Mysql)]), Dialect::Postgres);
    assert_eq!(frag(&s, "t"), "select * from src_t");
    assert!(s.fallbacks[0].contains("could not be parsed"));
}

#[test]
fn subqueries_star_and_ambiguity_read_more() {
    let two = inputs(&[("a", Dialect::Postgres), ("b", Dialect::Postgres)]);
    let s = split(&["select a.id from a where a.id in (select b.id from b where b.k = 1)"], &two, Dialect::Postgres);
    assert_eq!(frag(&s, "b"), "select id, k from src_b where (k = 1)");
    assert_eq!(frag(&s, "a"), "select id from src_a");
    let s = split(&["select id from a join b on a.k = b.k"], &two, Dialect::Postgres);
    assert_eq!(frag(&s, "a"), "select * from src_a");
    let s = split(&["select a.*, b.k from a join b on a.k = b.k"], &two, Dialect::Postgres);
    assert_eq!((frag(&s, "a"), frag(&s, "b")), ("select * from src_a".into(), "select k from src_b".into()));
    let s = split(&["select a.id as n from a order by n"], &two, Dialect::Postgres);
    assert_eq!(frag(&s, "a"), "select * from src_a");
    let s = split(&["select a.\"Mixed Col\" from a"], &two, Dialect::Postgres);
    assert_eq!(frag(&s, "a"), "select \"Mixed Col\" from src_a");
}

#[test]
fn mysql_models_are_parsed_as_mysql_and_requoted_for_the_compute() {
    let sql = "select `o`.`id`, \"x\" as lit from `orders` `o` where `o`.`amount` > 3";
    let s = split(&[sql], &inputs(&[("orders", Dialect::Postgres)]), Dialect::Mysql);
    assert_eq!(frag(&s, "orders"), "select \"amount\", \"id\" from src_orders where (\"amount\" > 3)");
    assert_eq!(to_compute_sql(sql, Dialect::Mysql), "select \"o\".\"id\", 'x' as lit from \"orders\" \"o\" where \"o\".\"amount\" > 3");
}

fn at(names: &[(&str, &str)]) -> Vec<FragmentInput> {
    names
        .iter()
        .map(|(n, loc)| FragmentInput {
            name: n.to_string(),
            dialect: Dialect::Postgres,
            relation: format!("src_{n}"),
            location: loc.to_string(),
        })
        .collect()
}

#[test]
fn inner_equi_joins_at_one_location_become_semi_joins() {
    let s = split(&["select a.id, b.v from a join b on b.id = a.id where a.x > 3"], &at(&[("a", "pg"), ("b", "pg")]), Dialect::Postgres);
    assert_eq!(
        frag(&s, "a"),
        "select id, x from src_a dvt_f where (x > 3) and (exists (select 1 from src_b dvt_semi where dvt_semi.id = dvt_f.id))"
    );
    assert_eq!(frag(&s, "b"), "select id, v from src_b dvt_f where (exists (select 1 from src_a dvt_semi where dvt_semi.id = dvt_f.id))");
    // Different locations: nothing to join at a source.
    let s = split(&["select a.id from a join b on b.id = a.id"], &at(&[("a", "pg"), ("b", "maria")]), Dialect::Postgres);
    assert_eq!(frag(&s, "a"), "select id from src_a");
    // Outer joins: the null-supplying side keeps every row's chance to be NULL-extended.
    let s = split(&["select a.id from a left join b on b.id = a.id"], &at(&[("a", "pg"), ("b", "pg")]), Dialect::Postgres);
    assert_eq!(frag(&s, "a"), "select id from src_a");
    assert_eq!(frag(&s, "b"), "select id from src_b");
    // A WHERE equality between inner relations counts too.
    let s = split(&["select a.id from a, b where a.k = b.k"], &at(&[("a", "pg"), ("b", "pg")]), Dialect::Postgres);
    assert!(frag(&s, "a").contains("exists (select 1 from src_b dvt_semi where dvt_semi.k = dvt_f.k)"), "{}", frag(&s, "a"));
}

#[test]
fn in_subqueries_at_one_location_are_pushed() {
    let s = split(&["select a.id from a where a.k in (select k from b where v > 2)"], &at(&[("a", "pg"), ("b", "pg")]), Dialect::Postgres);
    // (Bare names in the subquery could be outer references: `a` reads all its columns.)
    assert_eq!(frag(&s, "a"), "select * from src_a where (k in (select k from src_b where (v > 2)))");
    // Elsewhere, negated, correlated through another alias, or not portable: kept in the remainder.
    for (sql, loc) in [
        ("select a.id from a where a.k in (select k from b where v > 2)", "maria"),
        ("select a.id from a where a.k not in (select k from b)", "pg"),
        ("select a.id from a, c where a.k in (select b.k from b where b.v = c.v)", "pg"),
        ("select a.id from a where a.k in (select k from b where lower(s) = 'x')", "pg"),
        ("select a.id from a left join c on c.id = a.id where c.k in (select k from b)", "pg"),
    ] {
        let s = split(&[sql], &at(&[("a", "pg"), ("b", loc), ("c", "other")]), Dialect::Postgres);
        assert!(!frag(&s, "a").contains(" in (") && !frag(&s, "c").contains(" in ("), "{sql}: {}", frag(&s, "a"));
    }
}
