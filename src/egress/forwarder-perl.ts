// The forwarder that runs inside a member's own network namespace (which has only a loopback):
// it listens on 127.0.0.1:PORT there and relays each connection to the egress proxy's unix socket,
// then becomes the member's command. Perl (perl-base's modules only), because the sandbox shows the
// host's /usr (perl is there wherever Lazarus's spawner runs); no host network is ever needed. One
// process relays every connection of the member in a select loop: no fork per connection.
//
//   perl -e FORWARDER PORT SOCKET WATCH -- COMMAND...
//
// The Perl lives in forwarder.pl beside this module (copied into dist/ by the build; `perl -c`
// checks it in test/egress/forwarder.test.ts).
//
// The forwarder is double-forked, so it is not the member's child (a shell's `wait` would wait
// for it); it dies with the member's pid namespace (sandbox), or once process WATCH is gone
// (container: WATCH is the supervisor; 0 watches nothing). Without a COMMAND the parent just
// returns once the forwarder listens (container: the engine then joins the namespace). It brings
// the namespace's loopback up where it may (a fresh `unshare --net` has it down; in bubblewrap it
// is up already). A member that kills it loses the proxy, never gains a network: its namespace
// has no route out. When the proxy is down, each connection is closed at once (refused), and the
// next one tries the socket again.
import { readFileSync } from "node:fs";

export const PERL_FORWARDER = readFileSync(new URL("./forwarder.pl", import.meta.url), "utf8");
