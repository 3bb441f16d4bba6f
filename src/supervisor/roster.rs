//! The services the supervisor knows, by stable identity: a slot with a
//! generation (`ServiceId`), like an arena handle. Adding or removing a
//! service never moves another; a removed service's slot is reused with the
//! next generation, so an id a late event still carries (a reaped pid, a
//! probe result, a notify datagram of a removed or replaced service)
//! matches nothing and is dropped. Also the dependency edges by id.

use std::collections::{BTreeMap, HashMap};

use super::Service;
use super::event::ServiceId;
use crate::graph::{Graph, closure};

/// Generations wrap within 24 bits, the room an epoll token has for them.
const GENERATION_MASK: u32 = 0xff_ffff;

struct Slot {
    generation: u32,
    service: Option<Service>,
}

/// Every service, by id.
#[derive(Default)]
pub struct Roster {
    slots: Vec<Slot>,
    /// Ordered: status lists every service by name, and sorting them for
    /// each request was some 5% of corral's samples answering one about
    /// 100 services (perf: the sort and musl's memcmp under it).
    by_name: BTreeMap<String, ServiceId>,
}

impl std::fmt::Debug for Roster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|s| &s.spec.name))
            .finish()
    }
}

impl Roster {
    /// Puts `service` in a free slot (the next generation of it) or a new
    /// one, sets its `id` and returns it.
    pub fn insert(&mut self, mut service: Service) -> ServiceId {
        let free = self.slots.iter().position(|s| s.service.is_none());
        let id = match free.and_then(|i| Some((i, self.slots.get_mut(i)?))) {
            Some((i, slot)) => {
                slot.generation = (slot.generation + 1) & GENERATION_MASK;
                ServiceId {
                    slot: i as u32,
                    generation: slot.generation,
                }
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    service: None,
                });
                ServiceId {
                    slot: (self.slots.len() - 1) as u32,
                    generation: 0,
                }
            }
        };
        service.id = id;
        self.by_name.insert(service.spec.name.clone(), id);
        if let Some(slot) = self.slots.get_mut(id.slot as usize) {
            slot.service = Some(service);
        }
        id
    }

    /// Takes the service out; its id is stale from now on.
    pub fn remove(&mut self, id: ServiceId) -> Option<Service> {
        let slot = self
            .slots
            .get_mut(id.slot as usize)
            .filter(|s| s.generation == id.generation)?;
        let service = slot.service.take()?;
        self.by_name.remove(&service.spec.name);
        Some(service)
    }

    pub fn get(&self, id: ServiceId) -> Option<&Service> {
        self.slots
            .get(id.slot as usize)
            .filter(|s| s.generation == id.generation)?
            .service
            .as_ref()
    }

    pub fn get_mut(&mut self, id: ServiceId) -> Option<&mut Service> {
        self.slots
            .get_mut(id.slot as usize)
            .filter(|s| s.generation == id.generation)?
            .service
            .as_mut()
    }

    pub fn lookup(&self, name: &str) -> Option<ServiceId> {
        self.by_name.get(name).copied()
    }

    /// Every service, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &Service> + '_ {
        self.slots.iter().filter_map(|s| s.service.as_ref())
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Service> + '_ {
        self.slots.iter_mut().filter_map(|s| s.service.as_mut())
    }

    /// Every id, in slot order.
    pub fn ids(&self) -> Vec<ServiceId> {
        self.iter().map(|s| s.id).collect()
    }

    /// Every id, by service name: the order status and reports show.
    pub fn ids_by_name(&self) -> Vec<ServiceId> {
        self.by_name.values().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The dependency edges between services, by id.
#[derive(Debug, Default, Clone)]
pub struct Deps {
    requires: HashMap<ServiceId, Vec<ServiceId>>,
    dependents: HashMap<ServiceId, Vec<ServiceId>>,
    /// Every service after all it requires.
    pub order: Vec<ServiceId>,
}

impl Deps {
    /// The validated graph of a configuration whose `i`-th service is
    /// `ids[i]`.
    pub fn new(graph: &Graph, ids: &[ServiceId]) -> Deps {
        let map = |edges: &[Vec<usize>]| -> HashMap<ServiceId, Vec<ServiceId>> {
            ids.iter()
                .enumerate()
                .map(|(i, &id)| {
                    let to = edges
                        .get(i)
                        .into_iter()
                        .flatten()
                        .filter_map(|&j| ids.get(j).copied())
                        .collect();
                    (id, to)
                })
                .collect()
        };
        Deps {
            requires: map(&graph.requires),
            dependents: map(&graph.dependents),
            order: graph
                .order
                .iter()
                .filter_map(|&i| ids.get(i).copied())
                .collect(),
        }
    }

    /// Keeps `id`'s edges from `old` (a service a reload removes keeps
    /// them until it is gone, so what requires it stops first).
    pub fn keep_edges_of(&mut self, id: ServiceId, old: &Deps) {
        for r in old.requires(id) {
            self.requires.entry(id).or_default().push(r);
            self.dependents.entry(r).or_default().push(id);
        }
        for d in old.dependents(id) {
            self.dependents.entry(id).or_default().push(d);
            self.requires.entry(d).or_default().push(id);
        }
    }

    /// Drops every edge of a service that is gone.
    pub fn forget(&mut self, id: ServiceId) {
        self.requires.remove(&id);
        self.dependents.remove(&id);
        for edges in self
            .requires
            .values_mut()
            .chain(self.dependents.values_mut())
        {
            edges.retain(|&e| e != id);
        }
        self.order.retain(|&e| e != id);
    }

    pub fn requires(&self, id: ServiceId) -> impl Iterator<Item = ServiceId> + '_ {
        self.requires.get(&id).into_iter().flatten().copied()
    }

    pub fn dependents(&self, id: ServiceId) -> impl Iterator<Item = ServiceId> + '_ {
        self.dependents.get(&id).into_iter().flatten().copied()
    }

    /// `id` and everything it needs, transitively.
    pub fn requirements_closure(&self, id: ServiceId) -> Vec<ServiceId> {
        closure(id, |n| self.requires(n).collect::<Vec<_>>())
    }

    /// `id` and everything that needs it, transitively.
    pub fn dependents_closure(&self, id: ServiceId) -> Vec<ServiceId> {
        closure(id, |n| self.dependents(n).collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_service;
    use std::path::Path;
    use std::time::Instant;

    fn service(name: &str) -> Service {
        let users = crate::config::users::UserDb::default();
        let spec = parse_service(
            Path::new(&format!("{name}.toml")),
            name,
            b"command = [\"/bin/true\"]\n",
            &users,
            &mut Vec::new(),
        )
        .unwrap();
        Service::new(spec, Instant::now(), 0)
    }

    #[test]
    fn ids_survive_removals_and_stale_ids_match_nothing() {
        let mut r = Roster::default();
        let a = r.insert(service("a"));
        let b = r.insert(service("b"));
        let c = r.insert(service("c"));
        assert!(r.remove(b).is_some());
        // The others keep their ids; the removed one is gone for good.
        assert_eq!(r.get(a).map(|s| s.spec.name.as_str()), Some("a"));
        assert_eq!(r.get(c).map(|s| s.spec.name.as_str()), Some("c"));
        assert!(r.get(b).is_none() && r.lookup("b").is_none());
        // Its slot comes back with the next generation: the old id stays
        // stale, so a late event for `b` cannot reach `d`.
        let d = r.insert(service("d"));
        assert_eq!((d.slot, d.generation), (b.slot, b.generation + 1));
        assert!(r.get(b).is_none());
        assert_eq!(r.get(d).map(|s| s.id), Some(d));
        assert_eq!(r.len(), 3);
        let names: Vec<String> = r
            .ids_by_name()
            .into_iter()
            .filter_map(|id| Some(r.get(id)?.spec.name.clone()))
            .collect();
        assert_eq!(names, ["a", "c", "d"]);
        // Tokens carry the id whole.
        assert_eq!(ServiceId::from_bits(d.bits()), d);
    }
}
