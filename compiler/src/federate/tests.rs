//! Unit tests of the splitting rules; the differential proof is in tests/e2e.
//!
//! The per-relation rules are tested with DataFusion as the model's dialect,
//! which no source speaks, so no sub-query is pushed whole.

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
        Dialect::DataFusion,
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
        Dialect::DataFusion,
    );
    assert_eq!(frag(&s, "b"), "select id, v from src_b where (v = 1)");
    assert_eq!(frag(&s, "a"), "select id, x from src_a");
}

#[test]
fn self_join_gets_an_or_of_its_filters() {
    let s = split(
        &["select x.id from t x join t y on x.p = y.id where x.k = 1 and y.k = 2"],
        &inputs(&[("t", Dialect::Postgres)]),
        Dialect::DataFusion,
    );
    // Each occurrence also needs its partner (a semi-join on the same relation).
    assert_eq!(
        frag(&s, "t"),
        "select id, k, p from src_t dvt_f where ((k = 1) and (exists (select 1 from src_t dvt_semi where dvt_semi.id = dvt_f.p))) or ((k = 2) and (exists (select 1 from src_t dvt_semi where dvt_semi.p = dvt_f.id)))"
    );
    let s = split(
        &["select x.id from t x left join t y on x.p = y.id where x.k = 1"],
        &inputs(&[("t", Dialect::Postgres)]),
        Dialect::DataFusion,
    );
    assert_eq!(frag(&s, "t"), "select id, k, p from src_t");
}

#[test]
fn limits_only_where_they_cannot_change_the_result() {
    let one = inputs(&[("t", Dialect::Sqlite)]);
    let s = split(&["select id, v from t where v > 1 order by id limit 5"], &one, Dialect::DataFusion);
    assert_eq!(frag(&s, "t"), "select id, v from src_t where (v > 1) order by id asc nulls last limit 5");
    for q in [
        "select v, count(*) from t group by v order by v limit 5",
        "select distinct v from t order by v limit 5",
        "select id, row_number() over (order by v) from t order by id limit 5",
        "select id from t where v > 1 or id like 'x%' order by id limit 5",
    ] {
        let s = split(&[q], &one, Dialect::DataFusion);
        assert!(!frag(&s, "t").contains("limit"), "{q} -> {}", frag(&s, "t"));
    }
    // Collation-dependent sources keep the limit in the remainder.
    let s = split(&["select id from t order by id limit 5"], &inputs(&[("t", Dialect::Postgres)]), Dialect::DataFusion);
    assert!(!frag(&s, "t").contains("limit"));
}

#[test]
fn filters_in_a_cte_stay_in_its_scope() {
    let s = split(
        &["with c as (select id, v from t where v = 1) select * from c where c.id > 2"],
        &inputs(&[("t", Dialect::Postgres)]),
        Dialect::DataFusion,
    );
    assert_eq!(frag(&s, "t"), "select id, v from src_t where (v = 1)");
    assert!(s.predicates.iter().any(|p| p.predicate == "c.id > 2" && p.pushed_to.is_none()));
}

#[test]
fn mysql_gets_no_string_predicates_and_unparsable_sql_falls_back() {
    let s = split(&["select id from t where name = 'x' and id = 3"], &inputs(&[("t", Dialect::Mysql)]), Dialect::DataFusion);
    assert_eq!(frag(&s, "t"), "select id, name from src_t where (id = 3)");
    let s = split(&["select ((( from"], &inputs(&[("t", Dialect::Mysql)]), Dialect::DataFusion);
    assert_eq!(frag(&s, "t"), "select * from src_t");
    assert!(s.fallbacks[0].contains("could not be parsed"));
}

#[test]
fn subqueries_star_and_ambiguity_read_more() {
    let two = inputs(&[("a", Dialect::Postgres), ("b", Dialect::Postgres)]);
    let s = split(&["select a.id from a where a.id in (select b.id from b where b.k = 1)"], &two, Dialect::DataFusion);
    assert_eq!(frag(&s, "b"), "select id, k from src_b where (k = 1)");
    assert_eq!(frag(&s, "a"), "select id from src_a");
    let s = split(&["select id from a join b on a.k = b.k"], &two, Dialect::DataFusion);
    assert_eq!(frag(&s, "a"), "select * from src_a");
    let s = split(&["select a.*, b.k from a join b on a.k = b.k"], &two, Dialect::DataFusion);
    assert_eq!((frag(&s, "a"), frag(&s, "b")), ("select * from src_a".into(), "select k from src_b".into()));
    let s = split(&["select a.id as n from a order by n"], &two, Dialect::DataFusion);
    assert_eq!(frag(&s, "a"), "select * from src_a");
    let s = split(&["select a.\"Mixed Col\" from a"], &two, Dialect::DataFusion);
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
    let s = split(&["select a.id, b.v from a join b on b.id = a.id where a.x > 3"], &at(&[("a", "pg"), ("b", "pg")]), Dialect::DataFusion);
    assert_eq!(
        frag(&s, "a"),
        "select id, x from src_a dvt_f where (x > 3) and (exists (select 1 from src_b dvt_semi where dvt_semi.id = dvt_f.id))"
    );
    assert_eq!(frag(&s, "b"), "select id, v from src_b dvt_f where (exists (select 1 from src_a dvt_semi where dvt_semi.id = dvt_f.id))");
    // Different locations: nothing to join at a source.
    let s = split(&["select a.id from a join b on b.id = a.id"], &at(&[("a", "pg"), ("b", "maria")]), Dialect::DataFusion);
    assert_eq!(frag(&s, "a"), "select id from src_a");
    // Outer joins: the null-supplying side keeps every row's chance to be NULL-extended.
    let s = split(&["select a.id from a left join b on b.id = a.id"], &at(&[("a", "pg"), ("b", "pg")]), Dialect::DataFusion);
    assert_eq!(frag(&s, "a"), "select id from src_a");
    assert_eq!(frag(&s, "b"), "select id from src_b");
    // A WHERE equality between inner relations counts too.
    let s = split(&["select a.id from a, b where a.k = b.k"], &at(&[("a", "pg"), ("b", "pg")]), Dialect::DataFusion);
    assert!(frag(&s, "a").contains("exists (select 1 from src_b dvt_semi where dvt_semi.k = dvt_f.k)"), "{}", frag(&s, "a"));
}

#[test]
fn in_subqueries_at_one_location_are_pushed() {
    let s =
        split(&["select a.id from a where a.k in (select k from b where v > 2)"], &at(&[("a", "pg"), ("b", "pg")]), Dialect::DataFusion);
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
        let s = split(&[sql], &at(&[("a", "pg"), ("b", loc), ("c", "other")]), Dialect::DataFusion);
        assert!(!frag(&s, "a").contains(" in (") && !frag(&s, "c").contains(" in ("), "{sql}: {}", frag(&s, "a"));
    }
}

fn pushed_sql(s: &Split, name: &str) -> String {
    flat(&s.pushed.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name} not pushed: {:#?}", s.pushed)).sql)
}

/// SQL on one line (pushed SQL and rewritten remainders are pretty-printed).
fn flat(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ").replace("( ", "(").replace(" )", ")")
}

fn remainders(s: &Split) -> Vec<String> {
    s.remainders.iter().map(|r| flat(r)).collect()
}

#[test]
fn a_query_whose_relations_all_live_at_one_location_runs_there_whole() {
    let pg = at(&[("a", "pg"), ("b", "pg"), ("c", "duck")]);
    let s = split(&["select a.k, count(*) as n from a join b on a.id = b.id group by a.k order by a.k limit 3"], &pg, Dialect::Postgres);
    assert_eq!(
        pushed_sql(&s, "dvt_q1"),
        "SELECT a.k, count(*) AS n FROM src_a AS a JOIN src_b AS b ON a.id = b.id GROUP BY a.k ORDER BY a.k LIMIT 3"
    );
    assert_eq!(s.pushed[0].reads.iter().cloned().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(s.pushed[0].columns, Some(vec!["k".to_string(), "n".to_string()]));
    assert_eq!(remainders(&s), ["SELECT * FROM \"dvt_q1\""]);
    // Nothing else is read: `a`, `b` and the unreferenced `c` are not fragments of their own (c: whole, with a note).
    assert!(!s.fragments.contains_key("a") && !s.fragments.contains_key("b"));
    // An unaliased relation keeps its name as the alias, so `a.k` still resolves at the source.
    let s = split(&["select distinct a.k from a"], &pg, Dialect::Postgres);
    assert_eq!(pushed_sql(&s, "dvt_q1"), "SELECT DISTINCT a.k FROM src_a AS a");
    // A filter and projection of one relation is left to the per-relation rules (same reads, and
    // its declared types and predicate records are kept).
    let s = split(&["select a.k from a where a.v > 1"], &pg, Dialect::Postgres);
    assert!(s.pushed.is_empty());
    assert_eq!(frag(&s, "a"), "select k, v from src_a where (v > 1)");
}

#[test]
fn ctes_and_from_subqueries_at_one_location_are_pushed_whole() {
    let locs = at(&[("a", "pg"), ("b", "pg"), ("c", "duck")]);
    let sql = "with s as (select a.k, sum(b.v) as total from a join b on a.id = b.id group by a.k) \
               select s.k, s.total, c.x from s join c on c.k = s.k where c.x > 1";
    let s = split(&[sql], &locs, Dialect::Postgres);
    assert_eq!(pushed_sql(&s, "dvt_q1"), "SELECT a.k, sum(b.v) AS total FROM src_a AS a JOIN src_b AS b ON a.id = b.id GROUP BY a.k");
    assert_eq!(remainders(&s), ["WITH s AS (SELECT * FROM \"dvt_q1\") SELECT s.k, s.total, c.x FROM s JOIN c ON c.k = s.k WHERE c.x > 1"]);
    // `c` lives elsewhere: still a narrowed fragment, its filter pushed.
    assert_eq!(frag(&s, "c"), "select k, x from src_c where (x > 1)");
    assert!(!s.fragments.contains_key("a"));
    // A FROM sub-query keeps its alias (and column aliases).
    let sql = "select d.k, c.x from (select k, max(v) from a group by k) as d(k, m) join c on c.k = d.k";
    let s = split(&[sql], &locs, Dialect::Postgres);
    assert_eq!(pushed_sql(&s, "dvt_q1"), "SELECT k, max(v) FROM src_a AS a GROUP BY k");
    assert_eq!(remainders(&s), ["SELECT d.k, c.x FROM \"dvt_q1\" AS d (k, m) JOIN c ON c.k = d.k"]);
    // The full and the incremental rendering share an identical sub-query's fragment.
    let full = "select d.k from (select k, count(*) as n from a where v > 1 group by k) d join c on c.k = d.k";
    let inc = "select d.k from (select k, count(*) as n from a where v > 1 group by k) d join c on c.k = d.k where c.x > 5";
    let s = split(&[full, inc], &locs, Dialect::Postgres);
    assert_eq!(s.pushed.len(), 1);
    assert!(remainders(&s).iter().all(|r| r.contains("FROM \"dvt_q1\" d JOIN")), "{:?}", s.remainders);
}

#[test]
fn sub_queries_are_not_pushed_whole_unless_provably_self_contained_at_one_place() {
    let locs = at(&[("a", "pg"), ("b", "pg"), ("c", "duck")]);
    // (query, model dialect, what may be pushed whole)
    for (sql, dialect, expected) in [
        // The source's dialect is not the model's, and a sum's type differs between engines.
        ("select a.k, sum(b.v) from a join b on a.id = b.id group by a.k", Dialect::Duckdb, vec![]),
        // Two locations.
        ("select a.k from a join c on c.k = a.k", Dialect::Postgres, vec![]),
        // `y` reads the CTE `x` (which itself is pushed).
        (
            "with x as (select distinct k from a), y as (select x.k from x join b on b.k = x.k) select * from y join c on c.k = y.k",
            Dialect::Postgres,
            vec!["SELECT DISTINCT k FROM src_a AS a"],
        ),
        // LATERAL sees the outer row.
        ("select * from c, lateral (select k from a where a.k = c.k) l", Dialect::Postgres, vec![]),
        // A CTE inside shadows an input's name.
        (
            "select * from (with b as (select 1 as k) select a.k from a join b on a.k = b.k) s join c on c.k = s.k",
            Dialect::Postgres,
            vec![],
        ),
        // A table function.
        (
            "select s.k from (select k from generate_series(1, 3) as g(k)) s join a on a.k = s.k join c on c.k = a.k",
            Dialect::Postgres,
            vec![],
        ),
    ] {
        let s = split(&[sql], &locs, dialect);
        assert_eq!(s.pushed.iter().map(|p| flat(&p.sql)).collect::<Vec<_>>(), expected, "{sql}");
    }
    // A name the SQL already uses is never taken (a CTE `dvt_q1` would shadow the fragment).
    let s = split(
        &[
            "with dvt_q1 as (select 1 as k), s as (select distinct a.k from a) select s.k from s join dvt_q1 on dvt_q1.k = s.k join c on c.k = s.k",
        ],
        &locs,
        Dialect::Postgres,
    );
    assert_eq!(s.pushed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["dvt_q2"]);
    // A relation also read outside the pushed sub-query keeps its own fragment.
    let s = split(
        &["with s as (select k from a join b on a.id = b.id) select s.k from s join a on a.k = s.k join c on c.k = s.k"],
        &locs,
        Dialect::Postgres,
    );
    assert_eq!(s.pushed.len(), 1);
    assert!(s.fragments.contains_key("a") && !s.fragments.contains_key("b"), "{:?}", s.fragments.keys());
}

#[test]
fn another_dialect_gets_only_sub_queries_that_mean_the_same_everywhere() {
    let with = |d: Dialect| -> Vec<FragmentInput> {
        ["a", "b", "c"]
            .iter()
            .map(|n| FragmentInput {
                name: n.to_string(),
                dialect: if *n == "c" { Dialect::Sqlite } else { d },
                relation: format!("src_{n}"),
                location: if *n == "c" { "lite".into() } else { "db".into() },
            })
            .collect()
    };
    let sub =
        "select a.k, count(*) as n, count(distinct b.v) as dv from a join b on a.id = b.id where a.x > 3 and b.s is not null group by a.k";
    let sql = format!("select s.k, s.n, c.z from ({sub}) s join c on c.k = s.k");
    // A DuckDB model over PostgreSQL (or DuckDB) relations: equi-joins, portable filters, GROUP BY and count.
    for source in [Dialect::Postgres, Dialect::Duckdb] {
        let s = split(&[&sql], &with(source), Dialect::Duckdb);
        assert_eq!(
            pushed_sql(&s, "dvt_q1"),
            "SELECT a.k, count(*) AS n, count(DISTINCT b.v) AS dv FROM src_a AS a JOIN src_b AS b ON a.id = b.id WHERE a.x > 3 AND b.s IS NOT NULL GROUP BY a.k"
        );
        assert_eq!(s.pushed[0].dialect, source);
    }
    // MySQL compares strings without case, SQLite with type affinity: nothing whole.
    for source in [Dialect::Mysql, Dialect::Sqlite] {
        assert!(split(&[&sql], &with(source), Dialect::Duckdb).pushed.is_empty());
    }
    // Anything whose value or type depends on the engine stays in the compute.
    for sub in [
        "select a.k, sum(a.v) as n from a group by a.k",
        "select a.k, a.v + 1 as n from a",
        "select a.k, lower(a.s) as n from a",
        "select a.k, a.v as n from a where a.s < 'm'",
        "select a.k, a.v as n from a order by a.v limit 3",
        "select a.k, a.v as n from a left join b on a.id < b.id",
        "select a.k, a.v as n from a full join b on a.id = b.id",
        "select a.k, count(*) as n from a group by a.k having count(*) > 1",
        "select a.k, max(a.s) as n from a group by a.k",
        "select * from a join b on a.id = b.id",
    ] {
        let s = split(&[&format!("select s.k, s.n, c.z from ({sub}) s join c on c.k = s.k")], &with(Dialect::Postgres), Dialect::Duckdb);
        assert!(s.pushed.is_empty(), "{sub}: {:#?}", s.pushed);
    }
}

#[test]
fn dialect_expressions_over_one_relation_are_computed_in_its_fragment() {
    let ins = inputs(&[("o", Dialect::Postgres), ("c", Dialect::Sqlite)]);
    let s = split(
        &["select to_char(o.ordered_at, 'FMMonth YYYY') as month, o.amount / nullif(o.quantity, 0) as unit_price, \
           sum(o.amount::int) as total, c.name from o join c on c.id = o.customer_id \
           group by to_char(o.ordered_at, 'FMMonth YYYY'), o.amount / nullif(o.quantity, 0), c.name"],
        &ins,
        Dialect::Postgres,
    );
    assert!(s.refused.is_empty(), "{:?}", s.refused);
    assert_eq!(
        frag(&s, "o"),
        "select to_char(ordered_at, 'FMMonth YYYY') as __dvt_expr_1, amount / nullif(quantity, 0) as __dvt_expr_2, \
         amount::INT as __dvt_expr_3, customer_id from src_o"
    );
    let r = flat(&remainders(&s)[0]);
    assert!(r.contains("o.__dvt_expr_1 AS month") && r.contains("sum(o.__dvt_expr_3)"), "{r}");
    assert!(r.contains("GROUP BY o.__dvt_expr_1, o.__dvt_expr_2, c.name"), "{r}");
    assert_eq!(s.computed.len(), 3);
    // In WHERE: moved, and the conjunct pushed into the fragment spells the expression out.
    let s = split(
        &["select o.id, c.name from o join c on c.id = o.customer_id where to_char(o.ordered_at, 'FMMonth') = 'May'"],
        &ins,
        Dialect::Postgres,
    );
    assert!(s.refused.is_empty(), "{:?}", s.refused);
    assert!(frag(&s, "o").contains("where ((to_char(ordered_at, 'FMMonth')) = 'May')"), "{}", frag(&s, "o"));
    assert!(flat(&remainders(&s)[0]).contains("WHERE o.__dvt_expr_1 = 'May'"), "{}", remainders(&s)[0]);
    // A self-join shares one fragment; each alias reads the computed column of its own rows.
    let s = split(
        &[
            "select a.id, b.id as other from o a join o b on b.customer_id = a.id join c on c.id = a.id where to_char(b.ordered_at, 'FMMonth') = 'May'",
        ],
        &ins,
        Dialect::Postgres,
    );
    assert!(flat(&remainders(&s)[0]).contains("WHERE b.__dvt_expr_1 = 'May'"), "{}", remainders(&s)[0]);
    // Two relations, another dialect, an aggregate or an unaliased item: nothing moves, the refusal stands.
    for sql in [
        // On the null-supplying side of an outer join an expression may be non-NULL for the
        // rows the join invents (`CASE WHEN o.x IS NULL …`); computed in the fragment it would be NULL.
        "select case when o.amount is null then 'none' else to_char(o.amount, 'FM990.00') end as x from c left join o on o.customer_id = c.id",
        "select o.amount / o.quantity as x from o right join c on c.id = o.customer_id full join o o2 on o2.id = o.id",
        "select o.amount / c.factor as x from o join c on c.id = o.customer_id",
        "select c.amount / c.factor as x from o join c on c.id = o.customer_id",
        "select avg(o.amount) as x from o join c on c.id = o.customer_id",
        "select o.amount / o.quantity from o join c on c.id = o.customer_id",
    ] {
        let s = split(&[sql], &ins, Dialect::Postgres);
        assert!(!s.refused.is_empty() && s.computed.is_empty(), "{sql}: {:?}", s.computed);
    }
}

#[test]
fn quoted_columns_are_quoted_once_in_the_source_dialect() {
    let s = split(
        &[r#"select a."a""b", a."id", b."x`y" from a join b on b.id = a.id where a."a""b" is not null"#],
        &inputs(&[("a", Dialect::Postgres), ("b", Dialect::Mysql)]),
        Dialect::DataFusion,
    );
    // `"id"` and `id` are one column: read once.
    assert_eq!(frag(&s, "a"), r#"select "a""b", id from src_a where ("a""b" IS NOT NULL)"#);
    assert_eq!(frag(&s, "b"), "select id, `x``y` from src_b");
}
