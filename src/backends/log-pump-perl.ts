// The log pump of log-pump.ts, in Perl: the same records, limits, rotation and signals, for hosts
// with perl and its Time::HiRes (Debian's perl; not perl-base alone). One pump runs per member
// for as long as the member writes, so its cost is per member: a node pump takes about 7 MB of
// its own memory and a node start-up of CPU, this one about 1 MB and ~5 ms of CPU (its modules
// load when first needed)
// (bench/README.md, apply). The daemon's supervisor runs it as `perl -e<PERL_PUMP> <log file> <max>
// <keep>`; apply's spawner (spawner-perl.ts) runs this same source in a fork of itself, with those arguments.
//
// Kept line for line with log-pump.ts (test/backends/log-pump.test.ts runs both on the same cases).
export const PERL_PUMP = String.raw`# lazarus log-pump (perl)
use strict;
# Modules load when first needed (Time::HiRes on the first output, Fcntl on the first rotation):
# most members write little, and loading them up front was most of the pump's start-up.
sub now { require Time::HiRes; return Time::HiRes::time(); }
my $PARTIAL = 1.0;
my $STAMP = 25;
my ($file, $maxArg, $keepArg) = @ARGV;
sub floor { my $x = $_[0]; my $i = int($x); return $i > $x ? $i - 1 : $i; }
my $max = ($maxArg || 0) + 0; $max = 10485760 unless $max > 0; $max = 4096 if $max < 4096;
my $keep = floor(($keepArg || 0) + 0); $keep = 0 if $keep < 0; $keep = 100 if $keep > 100;
my $maxLine = floor($max / 2) - $STAMP - 1; $maxLine = 16384 if $maxLine > 16384; $maxLine = 256 if $maxLine < 256;
my $name = "log";
my $fh = \*STDOUT;
my $size = 0;
binmode STDIN; binmode STDOUT;
if (defined $file && length $file) {
  my $i = rindex($file, "/");
  my $dir = $i > 0 ? substr($file, 0, $i) : ($i == 0 ? "/" : ".");
  if (chdir $dir) { $name = substr($file, $i + 1); $size = (stat STDOUT)[7] || 0; }
}
$SIG{HUP} = "IGNORE"; $SIG{INT} = "IGNORE"; $SIG{PIPE} = "IGNORE";
my @out; my $outBytes = 0;
sub rotate {
  if ($keep > 0) {
    my $ok = eval {
      for (my $i = $keep - 1; $i >= 1; $i--) { rename("$name.$i", "$name." . ($i + 1)) or $!{ENOENT} or die; }
      rename($name, "$name.1") or die;
      require Fcntl;
      sysopen(my $next, $name, Fcntl::O_WRONLY() | Fcntl::O_APPEND() | Fcntl::O_CREAT() | Fcntl::O_EXCL() | Fcntl::O_NOFOLLOW() | Fcntl::O_NONBLOCK() | Fcntl::O_NOCTTY(), 0640) or die;
      binmode $next;
      close $fh;
      $fh = $next; $size = 0; 1;
    };
    return if $ok;
  }
  truncate($fh, 0);
  $size = 0;
}
sub flush_out {
  return if $outBytes == 0;
  my $data = join("", @out); @out = (); $outBytes = 0;
  my $off = 0;
  while ($off < length $data) {
    my $n = syswrite($fh, $data, length($data) - $off, $off);
    if (!defined $n) { next if $!{EAGAIN} || $!{EINTR}; return; }
    $off += $n;
  }
  $size += length $data;
}
sub record {
  my ($stamp, $body) = @_;
  my $rec = "$stamp $body\n";
  if ($size + $outBytes + length($rec) > $max && $size + $outBytes > 0) { flush_out(); rotate(); }
  push @out, $rec; $outBytes += length $rec;
}
sub now_stamp { my $t = now(); my @g = gmtime(int $t); return sprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", $g[5] + 1900, $g[4] + 1, $g[3], $g[2], $g[1], $g[0], int(($t - int($t)) * 1000)); }
my $pending; my $pendingStamp = ""; my $deadline;
sub emit_pending { $deadline = undef; record($pendingStamp, $pending) if defined $pending && length $pending; $pending = undef; }
sub take {
  my ($chunk) = @_;
  my $stamp = now_stamp();
  my $s = (stat $fh)[7]; $size = $s if defined $s;
  my $start = 0;
  while ($start < length $chunk) {
    my $nl = index($chunk, "\n", $start);
    my $end = $nl < 0 ? length $chunk : $nl;
    my $piece = substr($chunk, $start, $end - $start);
    if (defined $pending) { $piece = $pending . $piece; $pending = undef; $deadline = undef; }
    else { $pendingStamp = $stamp; }
    while (length($piece) > $maxLine) { record($pendingStamp, substr($piece, 0, $maxLine)); $piece = substr($piece, $maxLine); }
    if ($nl < 0) { $pending = $piece; last; }
    record($pendingStamp, $piece);
    $start = $nl + 1;
  }
  flush_out();
  $deadline = now() + $PARTIAL if defined $pending && !defined $deadline;
}
sub finish { emit_pending(); flush_out(); exit 0; }
$SIG{TERM} = \&finish;
my $rin = ""; vec($rin, fileno(STDIN), 1) = 1;
while (1) {
  my $wait = defined $deadline ? $deadline - now() : undef;
  $wait = 0 if defined $wait && $wait < 0;
  my $n = select(my $rout = $rin, undef, undef, $wait);
  if ($n < 0) { next if $!{EINTR}; last; }
  if ($n == 0) { emit_pending(); flush_out(); next; }
  my $r = sysread(STDIN, my $chunk, 65536);
  if (!defined $r) { next if $!{EINTR} || $!{EAGAIN}; last; }
  last if $r == 0;
  take($chunk);
}
finish();
`;
