/**
 * ssh2 hands each packet to the socket in two to four writes (length, encrypted body, MAC),
 * and a busy channel produces many packets in one turn of the event loop. Written one by one,
 * that is a system call and a TCP segment each, and the small trailing MAC segment can wait on
 * Nagle's algorithm for the peer's delayed ACK. Corking the socket for the rest of the turn sends
 * everything written in it as one writev, as Node's documentation suggests for bursts of writes.
 * https://nodejs.org/api/stream.html#writablecork
 */
import type { Socket } from 'node:net';

/** Makes `socket` gather the writes of one event-loop turn into one; returns the same socket. */
export function coalesceWrites(socket: Socket): Socket {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  // The writes come from inside ssh2, which calls `socket.write` on this very object.
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Socket['write'];
  // Keystrokes and prompts go out at once; bulk output is already gathered per turn.
  socket.setNoDelay(true);
  return socket;
}
