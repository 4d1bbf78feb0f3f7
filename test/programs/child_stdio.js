// Node's child_process with piped stdio (libuv makes the pipes with
// socketpair): data through the child's stdin, its digest back.
const { spawn } = require('child_process');
const crypto = require('crypto');
const child = spawn('/usr/bin/sha256sum', [], { stdio: ['pipe', 'pipe', 'inherit'] });
const h = crypto.createHash('sha256');
let out = '';
child.stdout.on('data', (d) => { out += d; });
child.on('close', (code) => {
  console.log(code, out.split(' ')[0] === h.digest('hex') ? 'match' : 'MISMATCH');
});
for (let i = 0; i < 2000; i++) {
  const b = Buffer.alloc(i % 1000 + 1, i % 256);
  h.update(b);
  child.stdin.write(b);
}
child.stdin.end();
