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
# Once more than BULK bytes went to a side, and where splice(2) works (a known number for this
# architecture, and no filter forbids it), its pending bytes wait in a pipe instead, moved
# socket -> pipe -> socket by the kernel without a copy into this process (a short connection
# keeps to two descriptors: select's limit stays for the many; a pipe past it is not made).
# select(2) sees descriptors below 1024: a connection beyond that is closed at once (refused).
use Config;
use constant { CHUNK => 262144, HIGH => 1048576, BULK => 1048576, MAXFD => 1023, PIPESZ => 262144, F_SETPIPE_SZ => 1031, F_GETPIPE_SZ => 1032, SPLICE_FLAGS => 3 }; # SPLICE_F_MOVE | SPLICE_F_NONBLOCK
use Errno qw(EAGAIN EWOULDBLOCK EINTR ENOSYS EPERM EINVAL);
my $SPLICE = $Config{ptrsize} == 8 && $Config{archname} =~ /^x86_64-linux/ ? 275 : $Config{archname} =~ /^(aarch64|riscv64)-linux/ ? 76 : 0;
$SIG{PIPE} = 'IGNORE'; # a peer gone mid-write ends its connection (EPIPE), not the forwarder
my %side; # fileno => {fh, peer (fileno), out (pending bytes to write), n (bytes that went to it), pr/pw (the pipe holding them, splice mode), held (bytes in it), cap (its size), eof (peer sent no more), shut (written all, shut down), done (read side ended)}
sub nb { my $fh = shift; my $fl = fcntl($fh, POSIX::F_GETFL(), 0) // 0; fcntl($fh, POSIX::F_SETFL(), $fl | POSIX::O_NONBLOCK()); }
sub drop { my $fd = shift; my $s = delete $side{$fd} or return; my $p = delete $side{$s->{peer}}; for my $x ($s, $p ? $p : ()) { close $x->{fh}; close $x->{pr} if $x->{pr}; close $x->{pw} if $x->{pw}; } }
sub pending { my $s = shift; return $s->{pr} ? $s->{held} : length $s->{out}; }
sub sp { my ($in, $out, $len) = @_; return syscall($SPLICE, fileno($in), 0, fileno($out), 0, $len + 0, SPLICE_FLAGS); }
# splice refused by the kernel or a filter (nothing moved yet): no splice from now on.
sub nosplice { return 0 unless $! == ENOSYS || $! == EPERM || $! == EINVAL; $SPLICE = 0; return 1; }
sub flush {
  my $s = shift;
  if ($s->{pr}) {
    while ($s->{held}) {
      my $w = sp($s->{pr}, $s->{fh}, $s->{held});
      if ($w < 0) { return 1 if $! == EAGAIN || $! == EINTR; return 0; }
      $s->{held} -= $w;
    }
  }
  while (length $s->{out}) {
    my $w = syswrite($s->{fh}, $s->{out}, CHUNK);
    if (!defined $w) { return 1 if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR; return 0; }
    substr($s->{out}, 0, $w, '');
  }
  if ($s->{eof} && !$s->{shut}) { shutdown($s->{fh}, 1); $s->{shut} = 1; }
  pipe_for($s) if !$s->{pr} && $s->{n} > BULK && !$s->{eof}; # bulk: the kernel moves the rest
  return 1;
}
sub finished { my $s = shift; return $s->{done} && $s->{shut}; }
sub pump {
  my $s = shift; my $p = $side{$s->{peer}};
  if ($p->{pr}) {
    return flush($p) if $p->{held} >= $p->{cap};
    my $got = sp($s->{fh}, $p->{pw}, $p->{cap} - $p->{held});
    if ($got < 0) {
      return 1 if $! == EAGAIN || $! == EINTR;
      return 0 unless !$p->{held} && nosplice();
      close $p->{pr}; close $p->{pw}; delete @{$p}{qw(pr pw held cap)}; # copy from here
      return pump($s);
    }
    if ($got == 0) { $s->{done} = 1; $p->{eof} = 1; } else { $p->{held} += $got; }
    return flush($p);
  }
  my $got = sysread($s->{fh}, my $buf, CHUNK);
  if (!defined $got) { return 1 if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR; return 0; }
  if ($got == 0) { $s->{done} = 1; $p->{eof} = 1; } else { $p->{out} .= $buf; $p->{n} += $got; }
  return flush($p);
}
# A pipe for the bytes bound for one side from now on (splice), if splice works and it fits under MAXFD.
sub pipe_for {
  my $s = shift;
  return unless $SPLICE;
  pipe(my $r, my $w) or return;
  return if fileno($w) > MAXFD;
  fcntl($w, F_SETPIPE_SZ, PIPESZ); nb($r); nb($w);
  @{$s}{qw(pr pw held cap)} = ($r, $w, 0, fcntl($w, F_GETPIPE_SZ, 0) || 65536); # what the pipe holds (less than asked past the user's pipe quota)
}
# Accept one waiting connection (false when none waits).
sub take {
  accept(my $c, $l) or return 0;
  return 1 if fileno($c) > MAXFD - 1 || keys(%side) > MAXFD - 8;
  socket(my $u, PF_UNIX, SOCK_STREAM, 0) or return 1;
  connect($u, pack_sockaddr_un($path)) or return 1; # the proxy is down: the member's connection is refused
  setsockopt($c, 6, 1, 1); # TCP_NODELAY
  nb($c); nb($u);
  $side{fileno($c)} = { fh => $c, peer => fileno($u), out => '', n => 0 };
  $side{fileno($u)} = { fh => $u, peer => fileno($c), out => '', n => 0 };
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
    my $p = $side{$s->{peer}};
    vec($rin, $fd, 1) = 1 if !$s->{done} && pending($p) < ($p->{pr} ? $p->{cap} : HIGH);
    vec($win, $fd, 1) = 1 if pending($s);
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
