// The peer in the side-by-side run: a Socket.IO 4.8 node with its Redis adapter, doing
// what the run asks of chathub and nothing more — each socket joins its conversation's
// room; an end user's `send` is broadcast to the room's other sockets (on every node,
// through Redis pub/sub) and acknowledged. No ownership, no history, no idempotency.
//
// Env: PORT (0: any free port), REDIS_URL. Prints `listening <port>` when ready.
'use strict';

const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

async function main() {
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const io = new Server({ adapter: createAdapter(pub, sub), transports: ['websocket'] });
  io.on('connection', (socket) => {
    const room = `${socket.handshake.query.tenant}/${socket.handshake.query.conversation}`;
    socket.join(room);
    socket.on('send', (message, ack) => {
      socket.to(room).emit('message', message);
      if (typeof ack === 'function') ack({ ok: true });
    });
  });
  const httpServer = require('http').createServer();
  io.attach(httpServer);
  httpServer.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
    console.log(`listening ${httpServer.address().port}`);
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
