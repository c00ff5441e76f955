// The forwarder that runs inside a member's own network namespace (which has only a loopback):
// it listens on 127.0.0.1:PORT there and relays each connection to the egress proxy's unix socket,
// then becomes the member's command. Perl, because the sandbox shows the host's /usr (perl is
// there wherever Lazarus's spawner runs) and it forks cheaply; no host network is ever needed.
//
//   perl -e FORWARDER PORT SOCKET WATCH -- COMMAND...
//
// The forwarder is double-forked, so it is not the member's child (a shell's `wait` would wait
// for it); it dies with the member's pid namespace (sandbox), or once process WATCH is gone
// (container: WATCH is the supervisor; 0 watches nothing). Without a COMMAND the parent just
// returns once the forwarder listens (container: the engine then joins the namespace). It brings
// the namespace's loopback up where it may (a fresh `unshare --net` has it down; in bubblewrap it
// is up already). A member that kills it loses the proxy, never gains a network: its namespace
// has no route out. When the proxy is down, each connection is closed at once (refused), and the
// next one tries the socket again.
export const PERL_FORWARDER = String.raw`
use strict; use warnings; use Socket; use POSIX ();
my ($port, $path, $watch) = splice(@ARGV, 0, 3);
shift @ARGV if @ARGV && $ARGV[0] eq '--';
if (socket(my $s, PF_INET, SOCK_DGRAM, 0)) { my $req = pack("a16 s x22", "lo", 0x49); ioctl($s, 0x8914, $req); close $s; } # SIOCSIFFLAGS lo UP|LOOPBACK|RUNNING
socket(my $l, PF_INET, SOCK_STREAM, 0) or die "lazarus egress forwarder: socket: $!\n";
setsockopt($l, SOL_SOCKET, SO_REUSEADDR, 1);
bind($l, pack_sockaddr_in($port, inet_aton('127.0.0.1'))) or die "lazarus egress forwarder: bind 127.0.0.1:$port: $!\n";
listen($l, 512) or die "lazarus egress forwarder: listen: $!\n";
my $first = fork // die "lazarus egress forwarder: fork: $!\n";
if ($first) { close $l; waitpid($first, 0); exit 0 unless @ARGV; exec { $ARGV[0] } @ARGV or die "lazarus: cannot run $ARGV[0]: $!\n"; }
POSIX::setsid();
my $second = fork // POSIX::_exit(1);
POSIX::_exit(0) if $second;
open(STDIN, '<', '/dev/null'); open(STDOUT, '>', '/dev/null'); open(STDERR, '>', '/dev/null');
$SIG{CHLD} = 'IGNORE';
sub gone { my $st = ''; open(my $f, '<', "/proc/$watch/stat") or return 1; $st = <$f> // ''; return $st =~ /\) Z /; }
while (1) {
  if ($watch) { my $rin = ''; vec($rin, fileno($l), 1) = 1; POSIX::_exit(0) if gone(); next unless select($rin, undef, undef, 1) > 0; }
  accept(my $c, $l) or next;
  my $k = fork;
  if (!defined $k || $k) { close $c; next; }
  close $l;
  socket(my $u, PF_UNIX, SOCK_STREAM, 0) or POSIX::_exit(1);
  connect($u, pack_sockaddr_un($path)) or POSIX::_exit(1);
  setsockopt($c, 6, 1, 1); # TCP_NODELAY
  my %to = (fileno($c) => [$c, $u], fileno($u) => [$u, $c]);
  my $rin = ''; vec($rin, $_, 1) = 1 for keys %to;
  while (%to) {
    my $n = select(my $rout = $rin, undef, undef, undef);
    next if $n < 0;
    for my $fd (keys %to) {
      next unless vec($rout, $fd, 1);
      my ($from, $dest) = @{$to{$fd}};
      my $got = sysread($from, my $buf, 262144);
      if (!$got) { shutdown($dest, 1); vec($rin, $fd, 1) = 0; delete $to{$fd}; next; }
      my $off = 0;
      while ($off < $got) { my $w = syswrite($dest, $buf, $got - $off, $off); POSIX::_exit(0) unless defined $w; $off += $w; }
    }
  }
  POSIX::_exit(0);
}
`;
