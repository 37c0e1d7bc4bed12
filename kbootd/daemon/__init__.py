"""The kbootd daemon: `kbootd run` under systemd turns a fresh machine into a cluster node.

Flow
----
`kbootd run` (units/kbootd.service, Type=notify) takes the lock /run/kbootd/kbootd.lock,
reads its settings (kbootd.daemon.inputs, .document), runs init (control-plane) or join
(worker) through kbootd.engine, records every finished phase in /var/lib/kbootd/state.json
(0600), sends READY=1 once the node is initialised or joined, and then execs into the
lean supervisor (kbootd.daemon.supervise), which checks the node every 30 s. A restart
resumes after the last finished phase; a node that is done goes straight to supervising
and never runs init or join again, until `kbootd reset` removes the state. A worker
waits for its control plane without a deadline.

Settings, lowest precedence first (each source is named in the log)
--------------------------------------------------------------------
1. built-in defaults
2. /etc/kbootd/kbootd.yaml, then /etc/kbootd/kbootd.d/*.yaml (name order): kbootd documents
   (apiVersion: kbootd.io/v1alpha1, kind: KbootdConfiguration; see .document and
   cloud-init/schema/kbootd.schema.json). cloud-init's write_files (permissions '0600')
   is the primary way to deliver it.
3. the top-level `kbootd:` key of user-data, from /run/cloud-init/combined-cloud-config.json
   (cloud-init 23.3+) or /var/lib/cloud/instance/cloud-config.txt (22.x)
4. datasource metadata kbootd-role, kbootd-token, kbootd-endpoint, kbootd-ca-cert-hash, from
   /run/cloud-init/instance-data-sensitive.json (NoCloud meta-data, OpenStack properties,
   EC2 instance tags, GCE instance attributes)
A bootstrap token is only accepted from a file that no one but root can read (else exit 4).

What systemd and `kbootd status` show
-------------------------------------
STATUS= changes with every phase and retry, e.g.
    join: discovery: waiting for https://10.0.0.10:6443 (connection refused), attempt 12
    worker node-3 joined https://10.0.0.10:6443; kubelet active; node Ready
    failed: <the error>
EXTEND_TIMEOUT_USEC= goes out every 30 s while init/join makes progress (an event within
15 min); WATCHDOG=1 when WatchdogSec= is set; STOPPING=1 on SIGTERM (exit 0).
/run/kbootd/status.json (0644, no secrets) holds the same; `kbootd status [-o json]
[--wait [--timeout D]]` reads it and exits 0 done, 1 failed for good, 2 not done yet.

Exit codes of `kbootd run`
--------------------------
0 stopped by SIGTERM, or done (--no-supervise); 1 general failure (restarted);
2 preflight failed (restarted); 3 invalid settings (not restarted); 4 security failure,
e.g. CA pin mismatch or a token in a file others can read (not restarted); 5 timeout
(restarted). After a failure, the next attempt waits 10 s, doubling to 5 min.

Journal records
---------------
SYSLOG_IDENTIFIER=kbootd. Every record carries KBOOTD_ROLE (control-plane|worker),
KBOOTD_PHASE (e.g. discovery, certs/ca, inputs, supervise; empty for the run as a whole),
KBOOTD_EVENT, KBOOTD_ATTEMPT (retry count in the phase, else 0), KBOOTD_DURATION_MS
(time in the phase so far; the phase's duration on done/failed), PRIORITY and MESSAGE_ID:

    KBOOTD_EVENT  MESSAGE_ID                        PRIORITY  when
    start         ea3cee5fc22a46fba4dfffc38558c712  6         a phase starts
    done          02aa21117ee640b5a2ba6408d75fd755  6         a phase finished
    skipped       7202692023044f988a911ca9d91bf439  6         a phase skipped (or done before a restart)
    retry         d9f13507ac4942a99c3563c23c2db23b  5         a retry (logged when the cause changes,
                                                              for the first 5 attempts, then every 5 min)
    failed        3986beaee6da41ec811bcca482fb8ca9  3         a phase or the run failed
    info          8170bb980ac14dd5b26fbde243b62534  6 (7)     progress messages (7: engine output)
    warn          3277f023ff774dffbdc45404ea0774e0  4         warnings
    input         b2cb54b79cfe4950b429a397a780a799  6         a settings source and the merged result
    ready         5fd83c6deb904bb8a1903c8e109aa785  5         READY=1: initialised or joined
    health        584717e1902547208027fc58f6db411a  6 / 4     supervisor: the health line changed
    stopping      d3aa2bf667ac41cbb6ba0ab7bc3917a5  5         SIGTERM
    cert-renewed  f37bd6a932004bcd873c9dba3134b652  6         supervisor: a certificate renewed
    cert-restart  2b1ad89b9fb6483bae7d34e3a6845c0a  6         supervisor: a static Pod restarted to load it
    cert-expiring 8fa673a927034bed90dba21fe0720bc9  4         a CA nears expiry, an External CA leaf is due,
                                                              or the kubelet did not rotate its certificate
    cert-failed   bdf39eaedad24b82bf7264122c38e82d  3         a renewal or restart failed (next pass retries)

e.g. `journalctl -u kbootd KBOOTD_EVENT=retry -o verbose` or
`journalctl MESSAGE_ID=5fd83c6deb904bb8a1903c8e109aa785`. Not under systemd (no
JOURNAL_STREAM or no journal socket) the records go to stderr as plain lines.
Token secrets never appear in any of it; tokens are shown by their id.
"""
