use strict; use warnings; use Config; use POSIX (); use Socket;
# The egress proxy's byte mover (see splicer.ts): once the proxy allowed a CONNECT and reached the
# host, it hands the tunnel's two sockets here and leaves the byte path. This process takes them
# out of the proxy with pidfd_getfd(2) (it is the proxy's child, with the proxy's credentials) and
# moves each direction with splice(2) through a pipe (socket -> pipe -> socket: no copy into user
# space). One process, one select loop, every tunnel of the proxy.
#   perl splicer.pl PROXY_PID
# stdin (from the proxy), one line each:  T ID CLIENT_FD INODE UPSTREAM_FD INODE  (take a tunnel)  |  K ID (end it)
# stdout (to the proxy):  ready | unavailable WHY  (once), then  ok ID | no ID WHY  (per T),
#   end ID BYTES_UP BYTES_DOWN  (a tunnel ended; up is client -> host)
# The proxy's end of stdin closing (the proxy ended or died) ends this process and every tunnel.
$| = 1;
$SIG{PIPE} = 'IGNORE';
my $proxy = shift @ARGV;
# splice's number per architecture (pidfd_open 434 and pidfd_getfd 438 are the same on all of these).
my $arch = $Config{archname};
my $SPLICE = $Config{ptrsize} == 8 && $arch =~ /^x86_64-linux/ ? 275 : $arch =~ /^(aarch64|riscv64)-linux/ ? 76 : undef;
unless ($SPLICE) { print "unavailable no splice(2) number known for $arch\n"; exit 0; }
my $pidfd = syscall(434, $proxy + 0, 0);
if ($pidfd < 0) { print "unavailable pidfd_open: $!\n"; exit 0; }
use constant { MOVE => 1, NONBLOCK => 2, PIPESZ => 1 << 20, MAXFD => 1023, F_SETPIPE_SZ => 1031, F_GETPIPE_SZ => 1032 };
use Errno qw(EAGAIN EINTR);
my (%tun, %dir); # tunnels by id; directions by the fileno of the socket they read
sub nb { my $fh = shift; my $fl = fcntl($fh, POSIX::F_GETFL(), 0) // 0; fcntl($fh, POSIX::F_SETFL(), $fl | POSIX::O_NONBLOCK()); }
# The proxy's descriptor FD, if it still is the socket with inode INO (else the proxy closed it
# meanwhile and the number names something else now: never taken).
sub take {
  my ($fd, $ino) = @_;
  my $n = syscall(438, $pidfd, $fd + 0, 0);
  return (undef, "pidfd_getfd: $!") if $n < 0;
  open(my $fh, '+<&=', $n) or do { POSIX::close($n); return (undef, "fdopen: $!") };
  return (undef, "descriptor $fd is no longer the tunnel's socket") unless (stat($fh))[1] == $ino;
  return ($fh, '');
}
sub direction {
  my ($src, $dst) = @_;
  pipe(my $r, my $w) or return undef;
  fcntl($w, F_SETPIPE_SZ, PIPESZ);
  nb($r); nb($w);
  my $cap = fcntl($w, F_GETPIPE_SZ, 0) || 65536; # what the pipe holds (less than asked past a pipe quota)
  return { src => $src, dst => $dst, r => $r, w => $w, held => 0, cap => $cap, n => 0, eof => 0, shut => 0 };
}
sub start {
  my ($id, $cfd, $cino, $ufd, $uino) = @_;
  my ($c, $cwhy) = take($cfd, $cino); return $cwhy unless $c;
  my ($u, $uwhy) = take($ufd, $uino); return $uwhy unless $u;
  my $up = direction($c, $u) or return "pipe: $!";
  my $down = direction($u, $c) or return "pipe: $!";
  return "too many descriptors" if grep { fileno($_) > MAXFD } $c, $u, $up->{r}, $up->{w}, $down->{r}, $down->{w};
  nb($c); nb($u);
  $tun{$id} = { id => $id, up => $up, down => $down, c => $c, u => $u };
  $dir{fileno($c)} = $up; $dir{fileno($u)} = $down;
  $up->{t} = $down->{t} = $id;
  return '';
}
sub finish {
  my $id = shift; my $t = delete $tun{$id} or return;
  delete @dir{fileno($t->{c}), fileno($t->{u})};
  close $_ for $t->{c}, $t->{u}, @{$t->{up}}{qw(r w)}, @{$t->{down}}{qw(r w)};
  print "end $id $t->{up}{n} $t->{down}{n}\n";
}
sub sp { my ($in, $out, $len) = @_; return syscall($SPLICE, fileno($in), 0, fileno($out), 0, $len + 0, MOVE | NONBLOCK); }
# Move what can move now in one direction; false when the tunnel failed.
sub pump {
  my $d = shift;
  for (;;) {
    my $moved = 0;
    if ($d->{held}) {
      my $m = sp($d->{r}, $d->{dst}, $d->{held});
      if ($m < 0) { return 0 unless $! == EAGAIN || $! == EINTR; } else { $d->{held} -= $m; $moved = 1; }
    }
    if (!$d->{eof} && $d->{held} < $d->{cap}) {
      my $m = sp($d->{src}, $d->{w}, $d->{cap} - $d->{held});
      if ($m < 0) { return 0 unless $! == EAGAIN || $! == EINTR; }
      elsif ($m == 0) { $d->{eof} = 1; }
      else { $d->{held} += $m; $d->{n} += $m; $moved = 1; }
    }
    last unless $moved;
  }
  if ($d->{eof} && !$d->{held} && !$d->{shut}) { shutdown($d->{dst}, 1); $d->{shut} = 1; }
  return 1;
}
sub command {
  my $line = shift;
  if ($line =~ /^T (\d+) (\d+) (\d+) (\d+) (\d+)$/) {
    my ($id, @fds) = ($1, $2, $3, $4, $5);
    my $why = start($id, @fds);
    if ($why) { print "no $id $why\n"; return; }
    print "ok $id\n";
    my $t = $tun{$id};
    finish($id) unless pump($t->{up}) && pump($t->{down});
    finish($id) if $tun{$id} && $t->{up}{shut} && $t->{down}{shut};
  } elsif ($line =~ /^K (\d+)$/) { finish($1); }
}
print "ready\n";
my $inbuf = '';
while (1) {
  my ($rin, $win) = ('', '');
  vec($rin, 0, 1) = 1;
  for my $d (values %dir) {
    vec($rin, fileno($d->{src}), 1) = 1 if !$d->{eof} && $d->{held} < $d->{cap};
    vec($win, fileno($d->{dst}), 1) = 1 if $d->{held};
  }
  my $n = select(my $rout = $rin, my $wout = $win, undef, undef);
  next if $n <= 0;
  if (vec($rout, 0, 1)) {
    my $got = sysread(STDIN, $inbuf, 4096, length $inbuf);
    exit 0 if defined $got && $got == 0; # the proxy is gone: so are its tunnels
    command($1) while $inbuf =~ s/^([^\n]*)\n//;
  }
  my %seen;
  for my $fd (keys %dir) {
    my $d = $dir{$fd} or next;
    my $ready = vec($rout, $fd, 1) || vec($wout, fileno($d->{dst}), 1);
    next unless $ready;
    my $t = $tun{$d->{t}} or next;
    if (!pump($d)) { finish($d->{t}); next; }
    finish($d->{t}) if $t->{up}{shut} && $t->{down}{shut};
  }
}
