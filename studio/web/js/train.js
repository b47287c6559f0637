// The Train tab: upload or pick a dataset, preview it as the model will see it, start a
// fine-tuning job and watch it live through the jobs API (OpenAI's fine-tuning shapes).

import { api, apiJSON, postJSON, decode, sse, el, fmt, duration } from './api.js';
import { lineChart } from './chart.js';

const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

export class Train {
  constructor({ onChat }) {
    this.onChat = onChat; // called with a model name by "Chat with the result"
    this.watch = null; // the AbortController of the job being watched
    this.job = null;
    $('upload-form').addEventListener('submit', (ev) => { ev.preventDefault(); this.upload(); });
    $('train-file').addEventListener('change', () => this.preview());
    $('ft-model').addEventListener('change', () => this.preview());
    $('job-form').addEventListener('submit', (ev) => { ev.preventDefault(); this.start(); });
    $('cancel-job').addEventListener('click', () => this.cancel());
    $('chat-result').addEventListener('click', () => this.job?.fine_tuned_model && this.onChat(this.job.fine_tuned_model));
    $('jobs-refresh').addEventListener('click', () => this.loadJobs());
    this.available = true;
  }

  // setBases offers the base models (not adapters) as what to tune.
  setBases(models) {
    const sel = $('ft-model');
    const keep = sel.value;
    sel.replaceChildren(...models.filter((m) => !m.parent).map((m) => el('option', { value: m.id }, m.id)));
    if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
  }

  async refresh() {
    await Promise.all([this.loadFiles(), this.loadJobs()]);
  }

  note(msg, bad = false) {
    const n = $('train-note');
    n.textContent = msg;
    n.classList.toggle('error', bad);
  }

  async loadFiles(select) {
    let body;
    try {
      body = await apiJSON('/v1/files?purpose=fine-tune');
    } catch (err) {
      this.unavailable(err);
      return;
    }
    const files = (body.data || []).filter((f) => !f.purpose || f.purpose === 'fine-tune');
    for (const [id, none] of [['train-file', 'choose a dataset'], ['valid-file', 'none']]) {
      const sel = $(id);
      const keep = id === 'train-file' && select ? select : sel.value;
      sel.replaceChildren(el('option', { value: '' }, none),
        ...files.map((f) => el('option', { value: f.id }, `${f.filename} (${f.id}, ${fmt(f.bytes / 1024, 3)} KiB)`)));
      if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
    }
    if (select) await this.preview();
  }

  unavailable(err) {
    if (err.status === 404 || err.status === 405) {
      this.available = false;
      $('train').classList.add('no-jobs');
      this.note('This server has no fine-tuning API (it answered ' + err.status + ').', true);
    } else {
      this.note(err.message, true);
    }
  }

  async upload() {
    const input = $('upload-file');
    if (!input.files.length) { this.note('Choose a JSONL file first.', true); return; }
    const form = new FormData();
    form.append('purpose', 'fine-tune');
    form.append('file', input.files[0]);
    this.note('Uploading ' + input.files[0].name + '…');
    try {
      const file = await decode(await api('/v1/files', { method: 'POST', body: form }));
      this.note(`Uploaded ${file.filename} as ${file.id}.`);
      input.value = '';
      await this.loadFiles(file.id);
    } catch (err) {
      this.note('Upload failed: ' + err.message, true);
    }
  }

  // preview shows the first examples with the template applied and the trained tokens marked.
  async preview() {
    const box = $('preview');
    const id = $('train-file').value;
    if (!id) { box.replaceChildren(el('p', { class: 'muted' }, 'Pick a dataset to see its first examples as the model will see them.')); return; }
    box.replaceChildren(el('p', { class: 'muted' }, 'Loading the preview…'));
    try {
      const q = new URLSearchParams({ model: $('ft-model').value, n: '5' });
      const body = await apiJSON(`/v1/files/${encodeURIComponent(id)}/preview?${q}`);
      const examples = (body.data || []).map((ex, i) => el('div', { class: 'example' },
        el('div', { class: 'example-n' }, `example ${i + 1}`),
        el('pre', {}, ...(ex.segments || []).map((s) => el('span', { class: s.trained ? 'seg trained' : 'seg', title: s.trained ? 'trained on' : 'context only' }, s.text)))));
      box.replaceChildren(el('p', { class: 'legend-line' }, el('span', { class: 'seg trained' }, 'highlighted'), ' tokens are trained on; the rest is context.'), ...examples);
    } catch (err) {
      box.replaceChildren(el('p', { class: 'error' }, 'No preview: ' + err.message));
    }
  }

  // request builds the job request from the form, leaving out what is blank so the server's
  // defaults apply.
  request() {
    const v = (id) => $(id).value.trim();
    const num = (id) => (v(id) === '' ? undefined : Number(v(id)));
    const req = { model: v('ft-model'), training_file: v('train-file') };
    if (v('valid-file')) req.validation_file = v('valid-file');
    if (v('ft-suffix')) req.suffix = v('ft-suffix');
    if (v('ft-seed')) req.seed = num('ft-seed');
    const hp = { n_epochs: num('ft-epochs'), batch_size: num('ft-batch'), learning_rate_multiplier: num('ft-lrmul') };
    const eco = { r: num('ft-r'), alpha: num('ft-alpha'), targets: v('ft-targets') ? v('ft-targets').split(/[\s,]+/).filter(Boolean) : undefined,
      dtype: v('ft-dtype') || undefined, seq_len: num('ft-seqlen'), lr: num('ft-lr'), steps: num('ft-steps') };
    const clean = (o) => { for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k]; return o; };
    if (Object.keys(clean(hp)).length) req.hyperparameters = hp;
    if (Object.keys(clean(eco)).length) req.ecotune = eco;
    return req;
  }

  async start() {
    const req = this.request();
    if (!req.training_file) { this.note('Pick or upload a training file first.', true); return; }
    $('start-job').disabled = true;
    try {
      const job = await decode(await postJSON('/v1/fine_tuning/jobs', req));
      this.note(`Started ${job.id}.`);
      this.show(job.id);
      this.loadJobs();
    } catch (err) {
      this.note('Could not start: ' + err.message, true);
    } finally {
      $('start-job').disabled = false;
    }
  }

  async cancel() {
    if (!this.job) return;
    try {
      this.render(await decode(await api(`/v1/fine_tuning/jobs/${encodeURIComponent(this.job.id)}/cancel`, { method: 'POST' })));
    } catch (err) {
      this.note('Cancel failed: ' + err.message, true);
    }
  }

  async loadJobs() {
    let body;
    try {
      body = await apiJSON('/v1/fine_tuning/jobs?limit=20');
    } catch (err) {
      this.unavailable(err);
      return [];
    }
    const jobs = body.data || [];
    const rows = jobs.map((j) => el('tr', { 'data-job': j.id, onclick: () => this.show(j.id), class: this.job?.id === j.id ? 'current' : '' },
      el('td', {}, j.id), el('td', {}, el('span', { class: `badge ${j.status}` }, j.status)), el('td', {}, j.model),
      el('td', {}, j.fine_tuned_model || ''), el('td', {}, new Date(j.created_at * 1000).toLocaleString())));
    $('jobs-body').replaceChildren(...rows);
    $('jobs-empty').hidden = jobs.length > 0;
    return jobs;
  }

  // show watches job id: its record, its events so far, then the live event stream.
  async show(id) {
    this.watch?.abort();
    const watch = new AbortController();
    this.watch = watch;
    this.events = new Map(); // id → event; the list and the stream may both send one
    this.metrics = new Map(); // step → the newest metrics of that step
    this.latest = null;
    $('job-card').hidden = false;
    $('events').replaceChildren();
    this.drawn = false;
    this.draw();
    try {
      this.render(await apiJSON(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}`, { signal: watch.signal }));
      await this.backfill(id, watch.signal);
      const poll = setInterval(() => this.poll(id, watch), 2000);
      watch.signal.addEventListener('abort', () => clearInterval(poll));
      while (!watch.signal.aborted && !TERMINAL.has(this.job.status)) {
        await this.follow(id, watch);
        if (watch.signal.aborted) break;
        await this.poll(id, watch);
        if (!TERMINAL.has(this.job.status)) await new Promise((r) => setTimeout(r, 1000));
      }
      await this.backfill(id, watch.signal); // events written between the stream's end and the final state
      clearInterval(poll);
    } catch (err) {
      if (!watch.signal.aborted) this.note(err.message, true);
    }
  }

  async poll(id, watch) {
    if (watch.signal.aborted) return;
    try {
      this.render(await apiJSON(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}`, { signal: watch.signal }));
    } catch { /* the next poll or the stream tells */ }
  }

  async backfill(id, signal) {
    let after = '';
    for (let page = 0; page < 50; page++) {
      const q = new URLSearchParams({ limit: '100' });
      if (after) q.set('after', after);
      const body = await apiJSON(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/events?${q}`, { signal });
      const data = body.data || [];
      // OpenAI lists events newest first; add them oldest first so that events of the same
      // second keep their order in the log.
      [...data].reverse().forEach((e) => this.addEvent(e));
      if (!body.has_more || !data.length) break;
      after = data.at(-1).id;
    }
  }

  // follow reads the live event stream until the server ends it.
  async follow(id, watch) {
    const signal = watch.signal;
    const res = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/events?stream=true`, { signal, headers: { Accept: 'text/event-stream' } });
    if (!res.ok) await decode(res);
    for await (const data of sse(res)) {
      if (data === '[DONE]') break;
      let e;
      try { e = JSON.parse(data); } catch { continue; /* a line we do not know */ }
      const fresh = !this.events.has(e.id);
      this.addEvent(e);
      // A message is a change of state (queued, running, done): show it now, not at the next poll.
      if (fresh && e.type !== 'metrics') this.poll(id, watch);
    }
  }

  addEvent(e) {
    if (!e || this.events.has(e.id)) return;
    this.events.set(e.id, e);
    const d = e.data;
    if (e.type === 'metrics' && d && Number.isFinite(d.step)) {
      this.metrics.set(d.step, { ...this.metrics.get(d.step), ...stripNulls(d), at: e.created_at });
      this.latest = d;
      this.draw();
    }
    const when = new Date(e.created_at * 1000).toLocaleTimeString();
    const item = el('li', { class: `ev ${e.level || 'info'} ${e.type || 'message'}`, 'data-id': e.id }, el('time', {}, when), ' ', e.message);
    // The list API returns newest first; keep the log in time order whatever arrives when.
    const list = $('events');
    const later = [...list.children].find((li) => this.events.get(li.dataset.id)?.created_at > e.created_at);
    const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
    list.insertBefore(item, later || null);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  render(job) {
    const changed = this.job?.id !== job.id || this.job?.status !== job.status;
    this.job = job;
    if (changed) this.loadJobs(); // the list shows each job's state too
    $('job-id').textContent = job.id;
    const badge = $('job-status');
    badge.textContent = job.status;
    badge.className = `badge ${job.status}`;
    $('job-model').textContent = job.fine_tuned_model ? `${job.model} → ${job.fine_tuned_model}` : job.model;
    $('cancel-job').hidden = TERMINAL.has(job.status);
    $('chat-result').hidden = !(job.status === 'succeeded' && job.fine_tuned_model);
    $('job-error').textContent = job.error?.message ? `${job.error.code ? job.error.code + ': ' : ''}${job.error.message}` : '';
    $('stat-tokens').textContent = job.trained_tokens ? String(job.trained_tokens) : '–';
    this.draw();
  }

  // draw renders the curves and the numbers; several events in one frame draw once.
  draw() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      const steps = [...this.metrics.keys()].sort((a, b) => a - b);
      const pick = (k) => steps.filter((s) => Number.isFinite(this.metrics.get(s)[k])).map((s) => [s, this.metrics.get(s)[k]]);
      lineChart($('loss-chart'), [
        { name: 'train loss', cls: 'train', points: pick('train_loss') },
        { name: 'validation loss', cls: 'valid', points: pick('valid_loss'), dots: true },
      ], { title: 'loss' });
      lineChart($('lr-chart'), [{ name: 'learning rate', cls: 'lr', points: pick('learning_rate') }], { title: 'learning rate' });
      const d = this.latest || {};
      const last = (k) => { const p = pick(k); return p.length ? p.at(-1)[1] : undefined; };
      $('stat-step').textContent = d.step !== undefined ? `${d.step}${d.total_steps ? ' / ' + d.total_steps : ''}` : '–';
      $('stat-loss').textContent = fmt(last('train_loss'));
      $('stat-valid').textContent = fmt(last('valid_loss'));
      $('stat-lr').textContent = fmt(last('learning_rate'), 3);
      $('stat-tps').textContent = fmt(last('tokens_per_sec'), 3);
      $('stat-eta').textContent = this.job && TERMINAL.has(this.job.status) ? '–' : duration(d.eta_seconds);
      const frac = d.total_steps ? Math.min(1, d.step / d.total_steps) : 0;
      $('job-progress').value = this.job?.status === 'succeeded' ? 1 : frac;
    });
  }
}

function stripNulls(o) {
  const out = {};
  for (const [k, v] of Object.entries(o)) if (v !== null && v !== undefined) out[k] = v;
  return out;
}
