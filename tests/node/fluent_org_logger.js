'use strict';
// Driver for npm's @fluent-org/logger (the TypeScript rewrite): sends the
// job's events (see common.js) through FluentClient and reports.
//
// What this logger puts on the wire (build/src/protocol.js, 1.0.10):
// - eventMode PackedForward (the default): [tag, bin entries, {"size": n}]
//   plus "chunk" (base64 of 16 random bytes) with ack; Compressed adds
//   "compressed": "gzip" (one gzip member).
// - eventMode Forward: [tag, [[time, record], ...], {"size": n, "chunk"?}].
// - eventMode Message: [tag, time, record, {}]: the option map is always
//   there, empty without ack.
// - time: an EventTime is packed as ext 0 (fixext 8, nanoseconds kept); a
//   number or a Date is taken as milliseconds and sent as integer seconds.
// - acks: with `ack`, several chunks may be in flight on one socket; each
//   emit's promise resolves when {"ack": its chunk} comes back, and is
//   rejected after ack.ackTimeout (500 ms by default: raised here, an
//   acked hop under ASan on a loaded machine can take longer).
const {readJob, Tally, tlsOptions} = require('./common');
const {FluentClient, EventTime} = require('@fluent-org/logger');

const job = readJob();
const socket = job.target.path ? {path: job.target.path} :
    {host: job.target.host, port: job.target.port};
socket.timeout = -1;
const opts = {
	eventMode: job.mode || 'PackedForward',
	socket: socket,
	flushInterval: 20,
};
if (job.ack)
	opts.ack = {ackTimeout: job.deadline_ms || 30000};
if (job.security)
	opts.security = {clientHostname: job.security.hostname,
	    sharedKey: job.security.key, username: job.security.username,
	    password: job.security.password};
if (job.tls)
	socket.tls = tlsOptions(job);
const client = new FluentClient(null, opts);
const tally = new Tally(job, () => client.shutdown());
client.socketOn('error', (err) => {
	// a refused handshake, a dropped connection: the logger would
	// reconnect and try again, but in a test nothing should fail
	if (tally.done)
		return;
	tally.errors.push('socket: ' + String(err && err.message || err));
	tally.finish(true);
});
for (const e of job.events) {
	const t = Array.isArray(e.time) ? new EventTime(e.time[0], e.time[1]) :
	    new Date(e.time * 1000);
	tally.sent++;
	client.emit(e.tag, e.record, t).then(() => tally.outcome(null),
	    (err) => tally.outcome(err || 'rejected'));
}
