//! The manager's state as `vine_status` shows it: tasks by state, workers with
//! their resources and tasks, and the largest waiting task with the workers that
//! could hold it. Built by the manager thread on request, in one pass over its
//! waiting tasks; nothing in scheduling changes.

use serde_json::{json, Value};

use super::scheduler::{Scheduler, Stats};
use crate::resources::Resources;

/// Tasks listed per worker, at most.
const TASKS_PER_WORKER: usize = 64;

fn resources(r: &Resources) -> Value {
    json!({
        "cores": r.cores(),
        "memory": r.memory_mb,
        "disk": r.disk_mb,
        "gpus": r.gpus,
    })
}

fn worker_name(id: u32) -> String {
    if id == super::core::LOCAL_WORKER {
        "worker-local".into()
    } else {
        format!("worker-{id}")
    }
}

/// What the manager knows besides its scheduler.
pub(crate) struct About<'a> {
    /// The name `vine_set_name` gave, if any.
    pub name: Option<&'a str>,
    pub port: Option<u16>,
    pub with_results: usize,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub run_dir: Option<&'a str>,
}

/// The report, as JSON text.
pub(crate) fn report(sched: &Scheduler, about: &About<'_>) -> String {
    let s: Stats = sched.stats();
    // The largest waiting task (by cores, then memory, gpus, disk), and how
    // many wait.
    let mut largest: Option<(Resources, u64, String)> = None;
    let key = |r: &Resources| (r.millicores, r.memory_mb, r.gpus, r.disk_mb);
    sched.visit_waiting(|t, _| {
        if largest
            .as_ref()
            .is_none_or(|(r, _, _)| key(&t.request) > key(r))
        {
            largest = Some((t.request, t.id, t.category().to_string_lossy().into_owned()));
        }
        std::ops::ControlFlow::Continue(())
    });
    let views = sched.worker_views();
    let workers: Vec<Value> = views
        .iter()
        .map(|w| {
            let mut ids = sched.tasks_on(w.id);
            ids.sort_unstable();
            let listed: Vec<u64> = ids.iter().copied().take(TASKS_PER_WORKER).collect();
            let (host, addr) = w
                .place
                .as_ref()
                .map_or((String::new(), String::new()), |p| {
                    (
                        p.hostname.to_string_lossy().into_owned(),
                        p.addrport.to_string_lossy().into_owned(),
                    )
                });
            json!({
                "id": worker_name(w.id),
                "hostname": host,
                "addrport": addr,
                "resources": resources(&w.capacity),
                "in_use": resources(&w.in_use),
                "tasks": w.tasks,
                "task_ids": listed,
                "draining": w.draining,
            })
        })
        .collect();
    // The workers that could run it: large enough, and with what else it
    // needs (a function task goes only where its function is registered).
    let mut able: Vec<String> = Vec::new();
    if let Some((_, id, _)) = &largest {
        sched.visit_waiting(|t, _| {
            if t.id != *id {
                return std::ops::ControlFlow::Continue(());
            }
            able = views
                .iter()
                .filter(|w| sched.worker_could_run(w.id, t))
                .map(|w| worker_name(w.id))
                .collect();
            std::ops::ControlFlow::Break(())
        });
    }
    let largest = largest.map(|(r, id, category)| {
        json!({
            "id": id,
            "category": category,
            "resources": resources(&r),
            "workers_able": able,
        })
    });
    json!({
        "manager": {
            "name": about.name,
            "pid": std::process::id(),
            "port": about.port,
            "started": s.time_when_started as f64 / 1e6,
            "now": super::journal::now_us() as f64 / 1e6,
            "runtime_directory": about.run_dir,
        },
        "tasks": {
            "waiting": s.tasks_waiting,
            "on_workers": s.tasks_on_workers,
            "running": s.tasks_running,
            "with_results": about.with_results,
            "submitted": s.tasks_submitted,
            "dispatched": s.tasks_dispatched,
            "done": s.tasks_done,
            "failed": s.tasks_failed,
            "cancelled": s.tasks_cancelled,
            "retried": s.tasks_retried,
        },
        "workers": workers,
        "largest_waiting": largest,
        "totals": {
            "workers_connected": s.workers_connected,
            "workers_joined": s.workers_joined,
            "workers_lost": s.workers_lost,
            "resources": resources(&s.total),
            "in_use": resources(&s.committed),
            "bytes_sent": about.bytes_sent,
            "bytes_received": about.bytes_received,
        },
    })
    .to_string()
}
