//! The dependency graph between services: resolves `requires` names, rejects
//! unknown names and cycles (printing the cycle and the files in it), and
//! gives a start order. Pure: no I/O.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One service as the graph sees it: a name and the names it requires,
/// each with the line that names it (for errors).
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub name: &'a str,
    pub requires: &'a [(String, usize)],
}

/// What is wrong with the graph, by node index; the configuration turns
/// these into `path:line` messages (it knows the files, the graph does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// Node `node` requires `name` at `line`, and there is no such node.
    Unknown {
        node: usize,
        name: String,
        line: usize,
    },
    /// These nodes require each other in a ring, in this order; `line` is
    /// the first member's `requires` entry that closes it.
    Cycle {
        members: Vec<usize>,
        line: Option<usize>,
    },
}

/// Edges by service index (the order of `Config::services`).
#[derive(Debug, Default, Clone)]
pub struct Graph {
    /// `requires[i]`: the services `i` needs up before it starts.
    pub requires: Vec<Vec<usize>>,
    /// `dependents[i]`: the services that require `i`; they stop before it.
    pub dependents: Vec<Vec<usize>>,
    /// A topological order: every service after all it requires.
    pub order: Vec<usize>,
}

impl Graph {
    /// Builds the graph, or returns every unknown name and every cycle.
    pub fn build(nodes: &[Node<'_>]) -> Result<Graph, Vec<GraphError>> {
        let n = nodes.len();
        let mut errors = Vec::new();
        let mut requires = vec![Vec::new(); n];
        let mut dependents = vec![Vec::new(); n];
        let index: std::collections::HashMap<&str, usize> =
            nodes.iter().enumerate().map(|(i, s)| (s.name, i)).collect();
        for (i, s) in nodes.iter().enumerate() {
            for (dep, line) in s.requires {
                match index.get(dep.as_str()).copied() {
                    Some(j) => {
                        if let Some(reqs) = requires.get_mut(i).filter(|r| !r.contains(&j)) {
                            reqs.push(j);
                            if let Some(deps) = dependents.get_mut(j) {
                                deps.push(i);
                            }
                        }
                    }
                    None => errors.push(GraphError::Unknown {
                        node: i,
                        name: dep.clone(),
                        line: *line,
                    }),
                }
            }
        }
        for cycle in find_cycles(&requires) {
            let Some(first) = cycle.first().and_then(|&i| nodes.get(i)) else {
                continue;
            };
            // The first member's `requires` entry that closes the cycle
            // (the next member, or itself for a self-dependency).
            let next = cycle
                .get(1)
                .and_then(|&i| nodes.get(i))
                .map_or(first.name, |n| n.name);
            let line = first
                .requires
                .iter()
                .find(|(d, _)| d == next)
                .map(|(_, l)| *l);
            errors.push(GraphError::Cycle {
                members: cycle,
                line,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let order = topo_order(&requires);
        Ok(Graph {
            requires,
            dependents,
            order,
        })
    }
}

/// `start` and every node reachable from it through `next`, each once,
/// `start` first.
pub fn closure<T, I>(start: T, mut next: impl FnMut(T) -> I) -> Vec<T>
where
    T: Copy + Eq + std::hash::Hash,
    I: IntoIterator<Item = T>,
{
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut stack = vec![start];
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            out.push(n);
            stack.extend(next(n));
        }
    }
    out
}

/// Kahn's algorithm, taking the lowest index first so the order is stable.
fn topo_order(requires: &[Vec<usize>]) -> Vec<usize> {
    let mut missing: Vec<usize> = requires.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); requires.len()];
    for (i, reqs) in requires.iter().enumerate() {
        for &j in reqs {
            if let Some(d) = dependents.get_mut(j) {
                d.push(i);
            }
        }
    }
    // A heap, not a BTreeSet: which of a B-tree's rebalancing functions
    // run depends on how many services there are, so no traced run could
    // place them all with the hot code (scripts/link-order).
    let mut ready: BinaryHeap<Reverse<usize>> = missing
        .iter()
        .enumerate()
        .filter(|&(_, &m)| m == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut order = Vec::with_capacity(requires.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in dependents.get(i).into_iter().flatten() {
            if let Some(m) = missing.get_mut(d) {
                *m -= 1;
                if *m == 0 {
                    ready.push(Reverse(d));
                }
            }
        }
    }
    order
}

/// Every elementary cycle found by a depth-first search, each reported once
/// and rotated to start at its lowest index.
fn find_cycles(requires: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let n = requires.len();
    let mut mark = vec![Mark::New; n];
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    for root in 0..n {
        match mark.get_mut(root) {
            Some(m) if *m == Mark::New => *m = Mark::Active,
            _ => continue,
        }
        // Iterative DFS: (node, next edge index).
        let mut stack = vec![(root, 0usize)];
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            if let Some(&next) = requires.get(node).and_then(|r| r.get(*edge)) {
                *edge += 1;
                match mark.get(next).copied() {
                    Some(Mark::New) => {
                        if let Some(m) = mark.get_mut(next) {
                            *m = Mark::Active;
                        }
                        stack.push((next, 0));
                    }
                    Some(Mark::Active) => {
                        let pos = stack.iter().position(|&(s, _)| s == next).unwrap_or(0);
                        let mut cycle: Vec<usize> =
                            stack.iter().skip(pos).map(|&(s, _)| s).collect();
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|&(_, v)| *v)
                            .map_or(0, |(k, _)| k);
                        cycle.rotate_left(min);
                        if !cycles.contains(&cycle) {
                            cycles.push(cycle);
                        }
                    }
                    Some(Mark::Done) | None => {}
                }
            } else {
                if let Some(m) = mark.get_mut(node) {
                    *m = Mark::Done;
                }
                stack.pop();
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(edges: &[&[usize]]) -> Vec<Vec<usize>> {
        edges.iter().map(|e| e.to_vec()).collect()
    }

    #[test]
    fn order_puts_requirements_first() {
        // 0 requires 2, 1 requires 0, 2 requires nothing.
        let order = topo_order(&g(&[&[2], &[0], &[]]));
        assert_eq!(order, vec![2, 0, 1]);
    }

    #[test]
    fn cycles_are_found_once_each() {
        assert_eq!(find_cycles(&g(&[&[1], &[2], &[0]])), vec![vec![0, 1, 2]]);
        assert_eq!(find_cycles(&g(&[&[0]])), vec![vec![0]]);
        assert!(find_cycles(&g(&[&[1], &[], &[0, 1]])).is_empty());
        // Two separate cycles.
        assert_eq!(find_cycles(&g(&[&[1], &[0], &[3], &[2]])).len(), 2);
    }

    #[test]
    fn closures_follow_edges_transitively() {
        let graph = Graph {
            requires: g(&[&[], &[0], &[1]]),
            dependents: g(&[&[1], &[2], &[]]),
            order: vec![0, 1, 2],
        };
        let edges = |e: &Vec<Vec<usize>>, i: usize| e.get(i).cloned().unwrap_or_default();
        let mut r = closure(2, |i| edges(&graph.requires, i));
        r.sort();
        assert_eq!(r, vec![0, 1, 2]);
        let mut d = closure(0, |i| edges(&graph.dependents, i));
        assert_eq!(d[0], 0, "the start comes first");
        d.sort();
        assert_eq!(d, vec![0, 1, 2]);
    }
}
