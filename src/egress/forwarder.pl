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
sub gone { my $st = ''; open(my $f, '<', "/proc/$watch/stat") or return 1; $st = <$f> // ''; return $st =~ /\) Z /; }
# One process, no fork per connection: every connection is a pair of non-blocking sockets (the
# member's TCP one, the proxy's unix one), relayed by one select loop. Each side has its pending
# bytes (read from its peer, not yet written to it); a side is read only while its peer's pending
# bytes are few (backpressure), and half-closed once its peer ended and its pending bytes are out.
# select(2) sees descriptors below 1024: a connection beyond that is closed at once (refused).
use constant { CHUNK => 262144, HIGH => 1048576, MAXFD => 1023 };
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
$SIG{PIPE} = 'IGNORE'; # a peer gone mid-write ends its connection (EPIPE), not the forwarder
my %side; # fileno => {fh, peer (fileno), out (pending bytes to write), eof (peer sent no more), shut (written all, shut down), done (read side ended)}
sub nb { my $fh = shift; my $fl = fcntl($fh, POSIX::F_GETFL(), 0) // 0; fcntl($fh, POSIX::F_SETFL(), $fl | POSIX::O_NONBLOCK()); }
sub drop { my $fd = shift; my $s = delete $side{$fd} or return; my $p = delete $side{$s->{peer}}; close $s->{fh}; close $p->{fh} if $p; }
sub flush {
  my $s = shift;
  while (length $s->{out}) {
    my $w = syswrite($s->{fh}, $s->{out}, CHUNK);
    if (!defined $w) { return 1 if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR; return 0; }
    substr($s->{out}, 0, $w, '');
  }
  if ($s->{eof} && !$s->{shut}) { shutdown($s->{fh}, 1); $s->{shut} = 1; }
  return 1;
}
sub finished { my $s = shift; return $s->{done} && $s->{shut}; }
sub pump {
  my $s = shift; my $p = $side{$s->{peer}};
  my $got = sysread($s->{fh}, my $buf, CHUNK);
  if (!defined $got) { return 1 if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR; return 0; }
  if ($got == 0) { $s->{done} = 1; $p->{eof} = 1; } else { $p->{out} .= $buf; }
  return flush($p);
}
# Accept one waiting connection (false when none waits).
sub take {
  accept(my $c, $l) or return 0;
  return 1 if fileno($c) > MAXFD - 1 || keys(%side) > MAXFD - 8;
  socket(my $u, PF_UNIX, SOCK_STREAM, 0) or return 1;
  connect($u, pack_sockaddr_un($path)) or return 1; # the proxy is down: the member's connection is refused
  setsockopt($c, 6, 1, 1); # TCP_NODELAY
  nb($c); nb($u);
  $side{fileno($c)} = { fh => $c, peer => fileno($u), out => '' };
  $side{fileno($u)} = { fh => $u, peer => fileno($c), out => '' };
  return 1;
}
nb($l);
my $looked = 0; # when WATCH was last looked at (once a second at most: not once per read)
while (1) {
  if ($watch && time != $looked) { $looked = time; POSIX::_exit(0) if gone(); }
  my ($rin, $win) = ('', '');
  vec($rin, fileno($l), 1) = 1;
  for my $fd (keys %side) {
    my $s = $side{$fd};
    vec($rin, $fd, 1) = 1 if !$s->{done} && length($side{$s->{peer}}{out}) < HIGH;
    vec($win, $fd, 1) = 1 if length $s->{out};
  }
  my $n = select(my $rout = $rin, my $wout = $win, undef, $watch ? 1 : undef);
  next if $n <= 0;
  if (vec($rout, fileno($l), 1)) { 1 while take(); }
  for my $fd (keys %side) {
    my $s = $side{$fd} or next;
    my $ok = 1;
    $ok = flush($s) if vec($wout, $fd, 1);
    $ok &&= pump($s) if $ok && vec($rout, $fd, 1) && $side{$fd};
    if (!$ok) { drop($fd); next; }
    my $p = $side{$s->{peer}};
    drop($fd) if $p && finished($s) && finished($p);
  }
}
