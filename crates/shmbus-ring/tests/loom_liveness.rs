//! loom models of registration racing reaping (PROTOCOL §7.1–§7.3): a registrant, a reaper and
//! a dying endpoint, the dying one stopped between any two steps of the protocol, every
//! interleaving (within loom's bounds) of the very code the rings run, over a model table and a
//! model process table.
//!
//! What must hold in every interleaving: a live endpoint is never reaped, and keeps its entry
//! and its roster bit; every entry a crash leaves in a state the protocol can judge is reaped
//! (its entry freed, its roster bit cleared) by the next probe after the death.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmbus-ring --release loom`.
#![cfg(loom)]

use shmbus_ring::model::liveness::{Endpoint, World, ENTRIES};
use shmbus_ring::Role;

const PHASE_ACTIVE: u64 = 2;
const EVER: u64 = 1 << 63;

fn model(f: impl Fn() + Sync + Send + 'static) {
    shmbus_ring::model::check(2, f);
}

/// The entry index a live endpoint holds, checked to be its own and active.
fn assert_active(world: &World, ep: &Endpoint, role: Role, pid: u32) {
    let index = ep.tag() - 1;
    assert_eq!(
        world.entry(index),
        (Some(role), PHASE_ACTIVE, pid),
        "live endpoint {} (pid {pid}) lost its entry",
        ep.tag()
    );
    assert_ne!(
        world.roster(role) & 1 << index,
        0,
        "live endpoint lost its roster bit"
    );
}

/// No entry is held by `pid`.
fn assert_reclaimed(world: &World, pid: u32, step: &str) {
    for index in 0..ENTRIES {
        let (role, _, holder) = world.entry(index);
        assert!(
            role.is_none() || holder != pid,
            "entry {index} of dead pid {pid} (died at {step}) was not reclaimed"
        );
    }
}

/// Steps where a dying registrant or a detaching endpoint stops. Every one leaves an entry the
/// next probe reclaims: a registrant holds its entry's lock from before it claims the entry, and
/// a detaching endpoint keeps its fields (and its lock) until the entry is free.
const STEPS: [&str; 7] = [
    "register.entry",
    "register.claimed",
    "register.locked",
    "register.active",
    "unregister.start",
    "unregister.leaving",
    "unregister.unlisted",
];

/// A victim dies at `step` (registering, or detaching), while a live registrant attaches and a
/// live reaper probes; then the reaper probes once more.
fn registration_racing_reaping(step: &'static str) {
    model(move || {
        let world = World::new();
        let reaper_p = world.spawn(1);
        let reaper = reaper_p.register(Role::Consumer).expect("an empty table");
        let victim_p = world.spawn(2).dying_at(step);
        let attached = if step.starts_with("unregister") {
            Some(victim_p.register(Role::Producer).expect("a free entry"))
        } else {
            None
        };
        let victim = loom::thread::spawn(move || {
            match attached {
                Some(ep) => victim_p.unregister(ep),
                None => assert!(victim_p.register(Role::Producer).is_none(), "it died"),
            }
            victim_p.die();
        });
        // Every process exists before any of them acts (a pid in a state word always names a
        // process that was started before).
        let p = world.spawn(3);
        let registrant = loom::thread::spawn(move || {
            let ep = p
                .register(Role::Producer)
                .expect("a live registrant gets an entry");
            (p, ep)
        });
        let reaped_now = reaper_p.probe(&reaper);
        victim.join().unwrap();
        let (registrant_p, ep) = registrant.join().unwrap();
        let reaped_later = reaper_p.probe(&reaper);

        let mine = (ep.tag(), ep.gen());
        assert!(
            !reaped_now.contains(&mine) && !reaped_later.contains(&mine),
            "the live registrant was reaped"
        );
        assert_active(&world, &ep, Role::Producer, registrant_p.pid());
        assert_active(&world, &reaper, Role::Consumer, 1);
        assert_reclaimed(&world, 2, step);
        assert_eq!(
            world.roster(Role::Producer),
            EVER | 1 << (ep.tag() - 1),
            "only the live producer's bit remains"
        );
    });
}

#[test]
fn loom_registration_racing_reaping_a_registrant_dying_after_claiming_an_entry() {
    registration_racing_reaping(STEPS[0]);
}

#[test]
fn loom_registration_racing_reaping_a_registrant_dying_after_stamping_its_entry() {
    registration_racing_reaping(STEPS[1]);
}

#[test]
fn loom_registration_racing_reaping_a_registrant_dying_after_locking() {
    registration_racing_reaping(STEPS[2]);
}

#[test]
fn loom_registration_racing_reaping_a_registrant_dying_before_its_roster_bit() {
    registration_racing_reaping(STEPS[3]);
}

#[test]
fn loom_registration_racing_reaping_an_endpoint_dying_as_it_starts_to_detach() {
    registration_racing_reaping(STEPS[4]);
}

#[test]
fn loom_registration_racing_reaping_an_endpoint_dying_while_leaving() {
    registration_racing_reaping(STEPS[5]);
}

#[test]
fn loom_registration_racing_reaping_an_endpoint_dying_after_clearing_its_bit() {
    registration_racing_reaping(STEPS[6]);
}

/// A dead endpoint is being reaped; the reaper dies at `step` while a live registrant takes
/// the table's last entry. The registrant's next probes take the reaping over (the reaper is
/// dead) and free both dead entries; the registrant is never touched.
fn reaper_dying(step: &'static str) {
    model(move || {
        let world = World::new();
        let victim_p = world.spawn(2);
        let _victim = victim_p.register(Role::Producer).expect("an empty table");
        let reaper_p = world.spawn(1).dying_at(step);
        let reaper = reaper_p.register(Role::Consumer).expect("a free entry");
        let p = world.spawn(3);
        victim_p.die();
        let first = loom::thread::spawn(move || {
            let _ = reaper_p.probe(&reaper);
            reaper_p.die();
        });
        let registrant = loom::thread::spawn(move || {
            let ep = p.register(Role::Producer).expect("the last entry is free");
            let _ = p.probe(&ep);
            (p, ep)
        });
        first.join().unwrap();
        let (registrant_p, ep) = registrant.join().unwrap();
        let _ = registrant_p.probe(&ep);
        let _ = registrant_p.probe(&ep);
        assert_reclaimed(&world, 2, step);
        assert_reclaimed(&world, 1, step);
        assert_active(&world, &ep, Role::Producer, 3);
        assert_eq!(world.roster(Role::Producer), EVER | 1 << (ep.tag() - 1));
        assert_eq!(
            world.roster(Role::Consumer),
            EVER,
            "the dead reaper's bit is cleared"
        );
    });
}

#[test]
fn loom_reaping_taken_over_from_a_reaper_that_died_after_claiming() {
    reaper_dying("reap.claimed");
}

#[test]
fn loom_reaping_taken_over_from_a_reaper_that_died_after_repairing() {
    reaper_dying("reap.repaired");
}

#[test]
fn loom_reaping_taken_over_from_a_reaper_that_died_after_clearing_the_bit() {
    reaper_dying("reap.unlisted");
}

/// The table is full: a live prober's entry and the two entries of a process that died. A
/// registrant must adopt a dead entry (reaping it itself) while the prober reaps too; a second
/// registrant, dying at `step` if one is given (of registering, or of adopting), races them.
/// Nothing live is touched, the registrant gets an entry, and afterwards every dead entry is
/// reclaimed.
fn full_table_adopted(step: Option<&'static str>) {
    model(move || {
        let world = World::new();
        let prober_p = world.spawn(1);
        let prober = prober_p.register(Role::Consumer).expect("an empty table");
        let dead_p = world.spawn(2);
        let _a = dead_p.register(Role::Producer).expect("a free entry");
        let _b = dead_p.register(Role::Consumer).expect("a free entry");
        dead_p.die();
        let p = world.spawn(3);
        let other = step.map(|s| world.spawn(4).dying_at(s));
        let registrant = loom::thread::spawn(move || {
            let ep = p.register(Role::Producer).expect("a dead entry is adopted");
            (p, ep)
        });
        let dying = other.map(|o| {
            loom::thread::spawn(move || {
                let _ = o.register(Role::Producer);
                o.die();
            })
        });
        let _ = prober_p.probe(&prober);
        let (registrant_p, ep) = registrant.join().unwrap();
        if let Some(d) = dying {
            d.join().unwrap();
        }
        let _ = prober_p.probe(&prober);
        assert_active(&world, &prober, Role::Consumer, 1);
        assert_active(&world, &ep, Role::Producer, registrant_p.pid());
        let what = step.unwrap_or("no death");
        assert_reclaimed(&world, 2, what);
        assert_reclaimed(&world, 4, what);
        assert_eq!(
            world.roster(Role::Consumer),
            EVER | 1 << (prober.tag() - 1),
            "only the prober's consumer bit remains ({what})"
        );
    });
}

#[test]
fn loom_a_full_table_of_dead_entries_is_adopted_by_a_registrant() {
    full_table_adopted(None);
}

#[test]
fn loom_an_adopter_dying_after_claiming_a_dead_entry_is_reclaimed() {
    full_table_adopted(Some("adopt.claimed"));
}

#[test]
fn loom_an_adopter_dying_after_repairing_a_dead_entry_is_reclaimed() {
    full_table_adopted(Some("adopt.repaired"));
}

#[test]
fn loom_an_adopter_dying_after_clearing_the_dead_bit_is_reclaimed() {
    full_table_adopted(Some("adopt.unlisted"));
}

#[test]
fn loom_an_adopter_dying_as_it_registers_in_the_adopted_entry_is_reclaimed() {
    full_table_adopted(Some("register.claimed"));
}

/// Found by review: a reaper that registered in its own thread (nothing orders its L4 before
/// a prober's load of its entry) must never be taken for gone while it reaps: L11 is AcqRel,
/// so a prober that sees the reaping word sees the reaper's registration too.
#[test]
fn loom_a_live_reaper_registered_in_its_own_thread_is_never_taken_over() {
    model(|| {
        let world = World::new();
        let victim_p = world.spawn(2);
        let _victim = victim_p.register(Role::Producer).expect("entry 0");
        let prober_p = world.spawn(3);
        let prober = prober_p.register(Role::Consumer).expect("entry 1");
        victim_p.die();
        let reaper_p = world.spawn(1);
        let r = loom::thread::spawn(move || {
            let ep = reaper_p.register(Role::Consumer).expect("entry 2");
            let reaped = reaper_p.probe(&ep);
            (reaped, ep)
        });
        let q = prober_p.probe(&prober);
        let (reaped, _ep) = r.join().unwrap();
        assert!(
            !(q.iter().any(|(t, _)| *t == 1) && reaped.iter().any(|(t, _)| *t == 1)),
            "entry 0 repaired by both the live reaper and the prober: {q:?} {reaped:?}"
        );
    });
}
