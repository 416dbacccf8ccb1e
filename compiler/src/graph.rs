//! The DAG of nodes and sources on petgraph: topological order, ancestors,
//! descendants, and cycle reports that print the cycle.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use petgraph::Direction;
use petgraph::algo::{kosaraju_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::nodes::Project;

/// Edges point from upstream to downstream. Nodes are numbered in the order of
/// their ids, so that sorting indices sorts ids.
pub struct Graph {
    pub graph: DiGraph<String, ()>,
    pub index: HashMap<String, NodeIndex, foldhash::fast::RandomState>,
    /// By index: whether it is a project node (else a source). Indices follow the
    /// ids, so nodes and sources are listed in id order without looking ids up.
    is_node: Vec<bool>,
}

impl Graph {
    /// Builds the graph of all enabled nodes and sources.
    pub fn build(project: &Project) -> Result<Graph> {
        use rayon::prelude::*;
        // Sources and nodes, each sorted already, merged into one sorted list.
        let (mut sources, mut nodes) = (project.sources.keys().peekable(), project.nodes.iter().peekable());
        let mut ids: Vec<(&String, Option<&crate::nodes::Node>)> = Vec::with_capacity(project.sources.len() + project.nodes.len());
        loop {
            let take_source = match (sources.peek(), nodes.peek()) {
                (Some(s), Some((n, _))) => s < n,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_source {
                ids.extend(sources.next().map(|s| (s, None)));
            } else {
                ids.extend(nodes.next().map(|(id, n)| (id, Some(n))));
            }
        }
        let mut graph = DiGraph::with_capacity(ids.len(), ids.len());
        let mut index = HashMap::with_capacity_and_hasher(ids.len(), Default::default());
        for (id, _) in &ids {
            index.insert((*id).clone(), graph.add_node((*id).clone()));
        }
        // Each node's parents, looked up on all cores; the edges added in order.
        let parents: Vec<Vec<NodeIndex>> = ids
            .par_iter()
            .map(|(_, node)| node.map_or_else(Vec::new, |n| n.depends_on.iter().filter_map(|d| index.get(d).copied()).collect()))
            .collect();
        for (to, from) in parents.into_iter().enumerate() {
            for from in from {
                graph.add_edge(from, NodeIndex::new(to), ());
            }
        }
        let is_node = ids.iter().map(|(_, n)| n.is_some()).collect();
        Ok(Graph { graph, index, is_node })
    }

    /// Errors with the cycle spelled out if the graph has one.
    pub fn check_acyclic(&self, project: &Project) -> Result<()> {
        if toposort(&self.graph, None).is_ok() {
            return Ok(());
        }
        let mut cycles: Vec<Vec<NodeIndex>> = kosaraju_scc(&self.graph)
            .into_iter()
            .filter(|c| c.len() > 1 || c.iter().any(|&n| self.graph.find_edge(n, n).is_some()))
            .collect();
        cycles.sort_by_key(|c| c.iter().map(|n| self.graph[*n].clone()).min());
        let scc = &cycles[0];
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        // Walk the cycle from its smallest member so the message is stable.
        let start = *scc.iter().min_by_key(|n| &self.graph[**n]).expect("non-empty");
        let mut path = vec![start];
        let mut cur = start;
        loop {
            let next = self
                .graph
                .edges_directed(cur, Direction::Incoming)
                .map(|e| e.source())
                .filter(|t| members.contains(t))
                .min_by_key(|t| if *t == start { String::new() } else { self.graph[*t].clone() })
                .expect("a strongly connected component has an edge onward");
            if next == start || path.contains(&next) {
                break;
            }
            path.push(next);
            cur = next;
        }
        let names: Vec<String> = path.iter().chain(std::iter::once(&start)).map(|n| self.graph[*n].clone()).collect();
        let file = project.nodes.get(&names[0]).map(|n| n.file.clone()).unwrap_or_default();
        Err(DvtError::new(ErrorCode::Cycle, format!("the DAG has a cycle (-> means depends on): {}", names.join(" -> ")))
            .at(Location::file(file))
            .hint("remove one of these refs to break the cycle"))
    }

    /// Node ids in dependency order (upstream first), ties broken by id.
    pub fn topo_order(&self) -> Vec<String> {
        // In-degrees by node index (petgraph's indices are 0..n).
        let mut indeg: Vec<usize> =
            self.graph.node_indices().map(|n| self.graph.neighbors_directed(n, Direction::Incoming).count()).collect();
        // The smallest index first is the smallest id first.
        let mut ready: BinaryHeap<Reverse<NodeIndex>> = self.graph.node_indices().filter(|n| indeg[n.index()] == 0).map(Reverse).collect();
        let mut out = Vec::with_capacity(indeg.len());
        while let Some(Reverse(n)) = ready.pop() {
            out.push(self.graph[n].clone());
            for m in self.graph.neighbors_directed(n, Direction::Outgoing) {
                let d = &mut indeg[m.index()];
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse(m));
                }
            }
        }
        out
    }

    /// Ancestors (`up`) or descendants of `id` up to `depth` steps (None: all).
    pub fn reach(&self, id: &str, up: bool, depth: Option<usize>) -> BTreeSet<String> {
        let dir = if up { Direction::Incoming } else { Direction::Outgoing };
        let mut out = BTreeSet::new();
        let Some(&start) = self.index.get(id) else { return out };
        let mut frontier = vec![start];
        let mut seen: BTreeSet<NodeIndex> = BTreeSet::new();
        let mut level = 0;
        while !frontier.is_empty() && depth.is_none_or(|d| level < d) {
            let mut next = Vec::new();
            for n in frontier {
                for m in self.graph.neighbors_directed(n, dir) {
                    if seen.insert(m) {
                        out.insert(self.graph[m].clone());
                        next.push(m);
                    }
                }
            }
            frontier = next;
            level += 1;
        }
        out
    }

    /// Direct parents of `id`, sorted.
    pub fn parents(&self, id: &str) -> Vec<&str> {
        self.neighbors(id, Direction::Incoming)
    }

    /// Direct children of `id`, sorted.
    pub fn children(&self, id: &str) -> Vec<&str> {
        self.neighbors(id, Direction::Outgoing)
    }

    fn neighbors(&self, id: &str, dir: Direction) -> Vec<&str> {
        self.index.get(id).map_or_else(Vec::new, |&n| self.neighbors_at(n, dir))
    }

    /// Indices of the project's nodes, then of its sources, each in id order
    /// (manifests list them so; a lookup by id per entry would compare 60-byte
    /// ids that are seldom in cache).
    pub fn nodes_then_sources(&self) -> (Vec<NodeIndex>, Vec<NodeIndex>) {
        self.graph.node_indices().partition(|n| self.is_node[n.index()])
    }

    /// The id at `n`.
    pub fn id(&self, n: NodeIndex) -> &str {
        &self.graph[n]
    }

    /// [`Graph::parents`] of the node at `n`.
    pub fn parents_at(&self, n: NodeIndex) -> Vec<&str> {
        self.neighbors_at(n, Direction::Incoming)
    }

    /// [`Graph::children`] of the node at `n`.
    pub fn children_at(&self, n: NodeIndex) -> Vec<&str> {
        self.neighbors_at(n, Direction::Outgoing)
    }

    fn neighbors_at(&self, n: NodeIndex, dir: Direction) -> Vec<&str> {
        let mut v: Vec<NodeIndex> = self.graph.neighbors_directed(n, dir).collect();
        v.sort_unstable();
        v.dedup();
        v.into_iter().map(|m| self.graph[m].as_str()).collect()
    }
}
