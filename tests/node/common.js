'use strict';
// What the two npm drivers share: the job they read on stdin, the records
// revived from it, a deadline, and the one result line they print.
//
// The job (JSON on stdin, written by tests/e2e/test_lf_recv_clients.py):
//   {"target": {"host": H, "port": P} | {"path": UNIX_SOCKET},
//    "mode": "Message" | "Forward" | "PackedForward" | "CompressedPackedForward",
//    "ack": true | false, "deadline_ms": N,
//    "security": {"hostname": H, "key": K, "username": U, "password": P}?,
//    "tls": {"ca": PEM_FILE, "servername": NAME}?,
//    "events": [{"tag": T, "time": SECONDS | [SECONDS, NANOSECONDS],
//                "record": R}, ...]}
// A value {"$bin": BASE64} in a record becomes a Buffer, which both
// loggers' msgpack encoders pack as bin; every JS string is packed as str.
//
// The result line (JSON on stdout):
//   {"sent": N, "ok": N, "errors": ["...", ...]}
// ok counts the events whose callback or promise said success: with acks,
// that the server acked their chunk.  The exit status is 0 only when every
// event is ok, 1 otherwise (errors, or the deadline passed).

function revive(v) {
	if (Array.isArray(v))
		return v.map(revive);
	if (v !== null && typeof v === 'object') {
		const keys = Object.keys(v);
		if (keys.length === 1 && keys[0] === '$bin')
			return Buffer.from(v.$bin, 'base64');
		const o = {};
		for (const k of keys)
			o[k] = revive(v[k]);
		return o;
	}
	return v;
}

function readJob() {
	const fs = require('fs');
	const job = JSON.parse(fs.readFileSync(0, 'utf8'));
	job.events = job.events.map((e) => ({
		tag: e.tag, time: e.time, record: revive(e.record)
	}));
	return job;
}

// Counts outcomes; finish() prints the line and exits once every event has
// one, or when the deadline passes (a missing ack must fail, not hang).
class Tally {
	constructor(job, close) {
		this.want = job.events.length;
		this.sent = 0;
		this.ok = 0;
		this.errors = [];
		this.close = close;
		this.done = false;
		this.timer = setTimeout(() => {
			this.errors.push('deadline: ' + (this.want - this.ok -
			    this.errors.length) + ' events without an outcome');
			this.finish(true);
		}, job.deadline_ms || 30000);
	}

	outcome(err) {
		if (err)
			this.errors.push(String(err && err.message || err));
		else
			this.ok++;
		if (this.ok + this.errors.length >= this.want)
			this.finish(false);
	}

	finish(timedOut) {
		if (this.done)
			return;
		this.done = true;
		clearTimeout(this.timer);
		const line = JSON.stringify({sent: this.sent, ok: this.ok,
		    errors: this.errors}) + '\n';
		const code = this.ok === this.want && !timedOut ? 0 : 1;
		const exit = () => process.stdout.write(line, () => process.exit(code));
		// the logger closes its socket first (a clean end for the server),
		// but a close that hangs must not hold the result back
		const t = setTimeout(exit, 2000);
		Promise.resolve().then(() => this.close()).catch(() => {}).then(() => {
			clearTimeout(t);
			exit();
		});
	}
}

// The job's TLS options as node's tls.connect takes them, or undefined.
function tlsOptions(job) {
	if (!job.tls)
		return undefined;
	const fs = require('fs');
	return {ca: [fs.readFileSync(job.tls.ca)],
	    servername: job.tls.servername || 'localhost'};
}

module.exports = {readJob, Tally, tlsOptions};
