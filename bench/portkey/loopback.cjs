// Preloaded (node --require) into Portkey's gateway by bench/run.py.
// The gateway's start script calls serve({port}) with no hostname, which binds every interface;
// the benchmark must listen on loopback only, so every net.Server.listen(port, ...) in this
// process is pinned to 127.0.0.1. Nothing else about the gateway is changed.
'use strict';
const net = require('net');
const HOST = '127.0.0.1';
const origListen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    if (args.length < 2 || args[1] === undefined || args[1] === null || typeof args[1] === 'string') {
      args[1] = HOST;
    } else {
      args.splice(1, 0, HOST); // listen(port, backlog?, cb?) -> listen(port, host, backlog?, cb?)
    }
  } else if (first && typeof first === 'object' && !Array.isArray(first) && 'port' in first) {
    args[0] = { ...first, host: HOST };
  }
  return origListen.apply(this, args);
};
