// Benchmark peer (a): the design of the seed article, a few lines of Node. It decodes every
// frame (MessagePack or JSON), answers hello with welcome and every batch with an ack at once.
// It stores nothing, so its acks promise nothing: it is the "fast because it does less" peer.
//
//   node server.mjs 127.0.0.1:18091
import { WebSocketServer } from 'ws';
import { decode, encode } from '@msgpack/msgpack';

const [host, port] = (process.argv[2] || '127.0.0.1:18091').split(':');
const wss = new WebSocketServer({ host, port: Number(port), perMessageDeflate: false, maxPayload: 512 * 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    let f;
    try {
      f = isBinary ? decode(data) : JSON.parse(data.toString());
    } catch {
      ws.close(1007);
      return;
    }
    const reply = (o) => ws.send(isBinary ? encode(o) : JSON.stringify(o));
    if (f.t === 'hello') reply({ t: 'welcome', sid: f.sid, acked: -1 });
    else if (f.t === 'batch' && Array.isArray(f.ev)) reply({ t: 'ack', seq: f.seq });
  });
});
wss.on('listening', () => console.log(`node-ws peer listening on ${host}:${port}`));
