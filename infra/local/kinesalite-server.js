// Serve the Kinesis API (kinesalite) on loopback only.
// Usage: node kinesalite-server.js <port|0> [<data directory>] [--clock-skew-ms=N]
// With a data directory the streams and their records are kept on disk (LevelDB through
// leveldown) and survive restarts and crashes; without one they live in memory.
// --clock-skew-ms shifts the server's clock (arrival times, the retention cutoff, iterator
// ages): tests stand the stream a day or a week later than it is.
// Prints one JSON line {"port": N} once listening, so the caller learns the real port
// when 0 (any free port) was asked for. Exits non-zero with a message if the port is taken.
'use strict';
const kinesalite = require('kinesalite');

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const skew = process.argv.slice(2).find((a) => a.startsWith('--clock-skew-ms='));
if (skew) {
  const skewMs = Number(skew.split('=')[1]);
  const realNow = Date.now;
  Date.now = () => realNow() + skewMs;
}
const port = Number(args[0] || 0);
const path = args[1];
const options = { createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 64 };
if (path) options.path = path;
const server = kinesalite(options);
server.on('error', (err) => {
  process.stderr.write(`kinesalite: cannot listen on 127.0.0.1:${port}: ${err.code || err.message}\n`);
  process.exit(2);
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
