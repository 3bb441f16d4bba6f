//! What requests mean: each verb checked against the caller's access,
//! turned into a supervisor event and an answer now or a waiter; waiters
//! answered when their services get where they were asked to go.

use super::*;

impl Control {
    /// Turns a request into a supervisor event and either an immediate
    /// answer or a waiter.
    pub fn plan(
        &mut self,
        client: u64,
        req: Request,
        sup: &Supervisor,
        out: &Output,
        facts: &Facts,
        now: Instant,
    ) -> Plan {
        let (access, peer) = self
            .clients
            .get(&client)
            .map_or((None, None), |c| (c.access, c.peer));
        let who = peer.map_or("an unknown peer".to_string(), |(uid, pid)| {
            format!("uid {uid} (pid {pid})")
        });
        match access {
            Some(Access::Full) => {}
            Some(Access::ReadOnly) if access::read_only(&req.verb) => {}
            Some(Access::ReadOnly) => {
                warn!(
                    "control socket: {who} may only look; refused {}",
                    verb_name(&req.verb)
                );
                return Plan::reply(Response::error(
                    ErrorKind::Denied,
                    format!(
                        "permission denied: {who} is in the control group, which may only use status, logs, health, wait, inspect, actions and events"
                    ),
                ));
            }
            None => {
                warn!(
                    "control socket: refused {who} ({}): not root, not corral's user, not in the control group",
                    verb_name(&req.verb)
                );
                return Plan::reply(Response::error(
                    ErrorKind::Denied,
                    format!(
                        "permission denied: {who} may not use corral's control socket; root and uid {} may, \
                         members of CORRAL_CONTROL_GROUP may look (status, logs, health, wait, inspect, actions, events)",
                        self.policy.own_uid
                    ),
                ));
            }
        }
        let names = match &req.verb {
            Verb::Status { names }
            | Verb::Start { names, .. }
            | Verb::Stop { names, .. }
            | Verb::Restart { names, .. }
            | Verb::Run { names, .. }
            | Verb::Signal { names, .. }
            | Verb::Wait { names, .. }
            | Verb::Actions { names }
            | Verb::Events { names }
            | Verb::Logs { names, .. } => names.clone(),
            Verb::Action { service, .. } => vec![service.clone()],
            Verb::Shutdown | Verb::Health | Verb::Reload { .. } | Verb::Inspect => Vec::new(),
        };
        let ids = match resolve(sup, &names) {
            Ok(ids) => ids,
            Err(resp) => return Plan::reply(resp),
        };
        let busy = || {
            Plan::reply(Response::error(
                ErrorKind::Failed,
                "corral is shutting down",
            ))
        };
        let needs_names = || {
            Plan::reply(Response::error(
                ErrorKind::BadRequest,
                "name at least one service",
            ))
        };
        match req.verb {
            Verb::Status { .. } => Plan::reply(Response::Ok {
                services: status(sup, out, &ids, now),
                message: None,
            }),
            Verb::Actions { .. } => Plan::reply(Response::Actions {
                actions: sup.action_list(&ids),
            }),
            Verb::Events { names } => {
                // Names were checked above; a service a reload adds later
                // under one of them is heard too.
                if let Some(c) = self.clients.get_mut(&client) {
                    c.watches = Some(names);
                }
                Plan {
                    event: None,
                    reply: None,
                    reload: None,
                }
            }
            Verb::Inspect => Plan::reply(Response::Inspect(Box::new(crate::proto::Inspect {
                images: facts.images.clone(),
                runtime: facts.runtime(now),
                services: status(sup, out, &[], now),
            }))),
            Verb::Logs { lines, follow, .. } => {
                if follow && let Some(c) = self.clients.get_mut(&client) {
                    c.follows = Some(ids.clone());
                }
                Plan::reply(Response::Logs {
                    lines: backlog(out, sup, &ids, lines),
                })
            }
            Verb::Health => {
                let complaints = sup.complaints();
                if complaints.is_empty() {
                    let n = sup
                        .services()
                        .iter()
                        .filter(|s| s.spec.enabled && s.spec.schedule.is_none())
                        .count();
                    Plan::reply(Response::Ok {
                        services: Vec::new(),
                        message: Some(format!("healthy: {n} enabled service(s) up")),
                    })
                } else {
                    let lines: Vec<String> = complaints
                        .iter()
                        .map(|(name, why)| format!("{name}: {why}"))
                        .collect();
                    Plan::reply(Response::error(ErrorKind::Failed, lines.join("\n")))
                }
            }
            Verb::Wait { timeout_ms, .. } => {
                // Without names: every enabled service (a scheduled job
                // has nothing to wait for between its runs).
                let ids = if ids.is_empty() {
                    sup.services()
                        .iter()
                        .filter(|s| s.spec.enabled && s.spec.schedule.is_none())
                        .map(|s| s.id)
                        .collect()
                } else {
                    ids
                };
                self.wait(client, &ids, Goal::Up { starts_before: 0 }, timeout_ms, now)
            }
            _ if sup.is_shutting_down() => busy(),
            Verb::Shutdown => Plan {
                event: Some(Event::ShutdownRequested),
                reply: Some(Response::Ok {
                    services: Vec::new(),
                    message: Some("shutting down".into()),
                }),
                reload: None,
            },
            Verb::Action { name, args, .. } => {
                let Some(&id) = ids.first() else {
                    return needs_names();
                };
                let known = sup.services().get(id).map(|s| &s.spec);
                if let Some(spec) = known.filter(|s| s.action(&name).is_none()) {
                    return Plan::reply(Response::error(
                        ErrorKind::BadRequest,
                        spec.no_such_action(&name),
                    ));
                }
                self.begin_stream(client);
                Plan {
                    event: Some(Event::ActionRequested(crate::supervisor::ActionRequest {
                        client,
                        id,
                        name,
                        args,
                    })),
                    reply: None,
                    reload: None,
                }
            }
            // The runtime reads the directory; see `Runtime::reload`.
            Verb::Reload {
                dry_run,
                timeout_ms,
            } => Plan {
                event: None,
                reply: None,
                reload: Some((dry_run, timeout_ms)),
            },
            Verb::Start { .. }
            | Verb::Stop { .. }
            | Verb::Restart { .. }
            | Verb::Run { .. }
            | Verb::Signal { .. }
                if ids.is_empty() =>
            {
                needs_names()
            }
            Verb::Run { timeout_ms, .. } => {
                let services: Vec<&crate::supervisor::Service> = ids
                    .iter()
                    .filter_map(|&id| sup.services().get(id))
                    .collect();
                let longruns: Vec<&str> = services
                    .iter()
                    .filter(|s| !s.spec.is_oneshot())
                    .map(|s| s.spec.name.as_str())
                    .collect();
                if !longruns.is_empty() {
                    return Plan::reply(Response::error(
                        ErrorKind::BadRequest,
                        format!(
                            "svctl run runs oneshots; {} is a longrun: use svctl start or restart",
                            longruns.join(", ")
                        ),
                    ));
                }
                // A run that overlap = "skip" (the default, and always for
                // an unscheduled oneshot) would not start: said at once.
                let skipped: Vec<&str> = services
                    .iter()
                    .filter(|s| s.state.is_active())
                    .filter(|s| {
                        s.spec
                            .schedule
                            .as_ref()
                            .is_none_or(|sc| sc.overlap == crate::config::schedule::Overlap::Skip)
                    })
                    .map(|s| s.spec.name.as_str())
                    .collect();
                if !skipped.is_empty() {
                    return Plan {
                        event: Some(Event::RunRequested(ids)),
                        reply: Some(Response::error(
                            ErrorKind::Failed,
                            format!(
                                "{}: still running from before; not run again (overlap = \"skip\")",
                                skipped.join(", ")
                            ),
                        )),
                        reload: None,
                    };
                }
                let goals: Vec<(ServiceId, Goal)> = services
                    .iter()
                    .map(|s| {
                        (
                            s.id,
                            Goal::Up {
                                starts_before: s.starts,
                            },
                        )
                    })
                    .collect();
                self.add_waiter(client, goals, timeout_ms, now);
                Plan {
                    event: Some(Event::RunRequested(ids)),
                    reply: None,
                    reload: None,
                }
            }
            Verb::Signal { signal, .. } => {
                let signal = match parse_signal(&signal) {
                    Ok(s) => s,
                    Err(e) => return Plan::reply(Response::error(ErrorKind::BadRequest, e)),
                };
                let down: Vec<&str> = ids
                    .iter()
                    .filter_map(|&id| sup.services().get(id))
                    .filter(|s| s.state.pid().is_none())
                    .map(|s| s.spec.name.as_str())
                    .collect();
                let reply = if down.is_empty() {
                    let to: Vec<&str> = ids
                        .iter()
                        .filter_map(|&id| sup.services().get(id))
                        .map(|s| s.spec.name.as_str())
                        .collect();
                    Response::Ok {
                        services: Vec::new(),
                        message: Some(format!("sent {} to {}", signal.as_str(), to.join(", "))),
                    }
                } else {
                    Response::error(
                        ErrorKind::Failed,
                        format!("not running, nothing sent to: {}", down.join(", ")),
                    )
                };
                Plan {
                    event: Some(Event::SignalRequested { ids, signal }),
                    reply: Some(reply),
                    reload: None,
                }
            }
            // Waited for and answered: every service the request moves,
            // not only those named (what they require, what requires them).
            Verb::Start { timeout_ms, .. } => self
                .wait(
                    client,
                    &sup.start_set(&ids),
                    Goal::Up { starts_before: 0 },
                    timeout_ms,
                    now,
                )
                .with_event(Event::StartRequested(ids)),
            Verb::Stop { timeout_ms, .. } => self
                .wait(client, &sup.stop_set(&ids), Goal::Down, timeout_ms, now)
                .with_event(Event::StopRequested(ids)),
            Verb::Restart { timeout_ms, .. } => {
                let mut goals: Vec<(ServiceId, Goal)> = ids
                    .iter()
                    .filter_map(|&id| {
                        let starts_before = sup.services().get(id)?.starts;
                        Some((id, Goal::Up { starts_before }))
                    })
                    .collect();
                for other in sup.start_set(&ids) {
                    if !ids.contains(&other) {
                        goals.push((other, Goal::Up { starts_before: 0 }));
                    }
                }
                self.add_waiter(client, goals, timeout_ms, now);
                Plan {
                    event: Some(Event::RestartRequested(ids)),
                    reply: None,
                    reload: None,
                }
            }
        }
    }

    pub(super) fn wait(
        &mut self,
        client: u64,
        ids: &[ServiceId],
        goal: Goal,
        timeout_ms: u64,
        now: Instant,
    ) -> Plan {
        self.add_waiter(
            client,
            ids.iter().map(|&id| (id, goal)).collect(),
            timeout_ms,
            now,
        );
        Plan {
            event: None,
            reply: None,
            reload: None,
        }
    }

    pub(super) fn add_waiter(
        &mut self,
        client: u64,
        goals: Vec<(ServiceId, Goal)>,
        timeout_ms: u64,
        now: Instant,
    ) {
        self.add_waiter_saying(client, goals, timeout_ms, now, None);
    }

    /// A waiter whose answer starts with `prefix` (a reload's plan).
    pub fn add_waiter_saying(
        &mut self,
        client: u64,
        goals: Vec<(ServiceId, Goal)>,
        timeout_ms: u64,
        now: Instant,
        prefix: Option<String>,
    ) {
        let timeout = Duration::from_millis(timeout_ms.min(24 * 3600 * 1000));
        self.waiters.push(Waiter {
            client,
            goals,
            deadline: now + timeout,
            timeout,
            prefix,
        });
    }

    /// Answers every waiter whose goals are reached, failed or out of time.
    pub fn settle_waiters(&mut self, sup: &Supervisor, out: &Output, now: Instant, epoll: &Epoll) {
        let mut answers = Vec::new();
        self.waiters.retain(|w| {
            let mut pending = Vec::new();
            for &(id, goal) in &w.goals {
                match sup.progress(id, goal) {
                    Progress::Reached => {}
                    Progress::Pending => pending.push(id),
                    Progress::Failed(why) => {
                        let name = sup.services().get(id).map_or("?", |s| s.spec.name.as_str());
                        answers.push((
                            w.client,
                            Response::error(ErrorKind::Failed, w.said(format!("{name}: {why}"))),
                        ));
                        return false;
                    }
                }
            }
            if pending.is_empty() {
                let ids: Vec<ServiceId> = w.goals.iter().map(|&(id, _)| id).collect();
                answers.push((
                    w.client,
                    Response::Ok {
                        services: status(sup, out, &ids, now),
                        message: w.prefix.clone(),
                    },
                ));
                return false;
            }
            if w.deadline <= now {
                let stuck: Vec<String> = sup
                    .status(&pending, now)
                    .into_iter()
                    .map(|s| match s.note {
                        Some(note) => format!("{} is {} ({note})", s.name, s.state),
                        None => format!("{} is {}", s.name, s.state),
                    })
                    .collect();
                answers.push((
                    w.client,
                    Response::error(
                        ErrorKind::Failed,
                        w.said(format!(
                            "timed out after {:?}: still waiting: {}",
                            w.timeout,
                            stuck.join("; ")
                        )),
                    ),
                ));
                return false;
            }
            true
        });
        for (client, resp) in answers {
            self.reply(client, resp, epoll);
        }
    }
}

fn verb_name(verb: &Verb) -> &'static str {
    match verb {
        Verb::Status { .. } => "status",
        Verb::Start { .. } => "start",
        Verb::Inspect => "inspect",
        Verb::Run { .. } => "run",
        Verb::Stop { .. } => "stop",
        Verb::Restart { .. } => "restart",
        Verb::Signal { .. } => "signal",
        Verb::Shutdown => "shutdown",
        Verb::Wait { .. } => "wait",
        Verb::Health => "health",
        Verb::Logs { .. } => "logs",
        Verb::Reload { .. } => "reload",
        Verb::Action { .. } => "action",
        Verb::Actions { .. } => "actions",
        Verb::Events { .. } => "events",
    }
}

/// Status with what only the runtime knows filled in.
fn status(sup: &Supervisor, out: &Output, ids: &[ServiceId], now: Instant) -> Vec<ServiceStatus> {
    let mut st = sup.status(ids, now);
    for s in &mut st {
        if let Some(id) = sup.lookup(&s.name) {
            (s.dropped_lines, s.file_lost_lines) = out.dropped(id);
        }
    }
    st
}

/// The last `n` lines of each service (`n` each), merged by time.
fn backlog(out: &Output, sup: &Supervisor, ids: &[ServiceId], n: usize) -> Vec<LogLine> {
    let mut all: Vec<(std::time::SystemTime, usize, LogLine)> = Vec::new();
    let mut seq = 0;
    let every: Vec<ServiceId>;
    let ids = if ids.is_empty() {
        every = sup.services().ids();
        &every
    } else {
        ids
    };
    for &id in ids {
        let Some((name, ring)) = out.ring(id) else {
            continue;
        };
        for e in ring.last(n) {
            all.push((e.time, seq, log_line(name, &e)));
            seq += 1;
        }
    }
    all.sort_by_key(|(t, seq, _)| (*t, *seq));
    all.into_iter().map(|(_, _, l)| l).collect()
}

/// Service names to ids; an unknown name is a bad request naming the
/// known ones.
fn resolve(sup: &Supervisor, names: &[String]) -> Result<Vec<ServiceId>, Response> {
    let mut ids = Vec::new();
    for name in names {
        match sup.lookup(name) {
            Some(id) => ids.push(id),
            None => {
                let known: Vec<&str> = sup
                    .services()
                    .iter()
                    .map(|s| s.spec.name.as_str())
                    .collect();
                let known = if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                };
                return Err(Response::error(
                    ErrorKind::BadRequest,
                    format!("unknown service `{name}` (known: {known})"),
                ));
            }
        }
    }
    Ok(ids)
}

/// What the event loop does with a request.
pub struct Plan {
    pub event: Option<Event>,
    pub reply: Option<Response>,
    /// Reload the services directory (dry run?, timeout in ms).
    pub reload: Option<(bool, u64)>,
}

impl Plan {
    fn reply(resp: Response) -> Plan {
        Plan {
            event: None,
            reply: Some(resp),
            reload: None,
        }
    }

    fn with_event(mut self, event: Event) -> Plan {
        self.event = Some(event);
        self
    }
}
