// Serve the Kinesis API (kinesalite, in memory) on loopback only.
// Usage: node kinesalite-server.js <port|0>
// Prints one JSON line {"port": N} once listening, so the caller learns the real port
// when 0 (any free port) was asked for. Exits non-zero with a message if the port is taken.
'use strict';
const kinesalite = require('kinesalite');

const port = Number(process.argv[2] || 0);
const server = kinesalite({ createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 64 });
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
