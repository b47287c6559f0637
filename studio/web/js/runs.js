// The Runs tab: every run folder under the server's runs folder (`ecotune train` output and
// jobs alike), with its curves and `ecotune eval` reports, and the jobs the API knows.

import { api, apiJSON, el, fmt, duration } from './api.js';
import { lineChart } from './chart.js';

const $ = (id) => document.getElementById(id);

export class Runs {
  constructor({ onJob }) {
    this.onJob = onJob; // called with a job id to watch it in the Train tab
    $('runs-refresh').addEventListener('click', () => this.refresh());
  }

  async refresh() {
    await Promise.all([this.loadRuns(), this.loadJobs()]);
  }

  async loadRuns() {
    let body;
    try {
      body = await apiJSON('/studio/api/runs');
    } catch (err) {
      $('runs-note').textContent = err.message;
      return;
    }
    $('runs-dir').textContent = body.runs_dir ? `in ${body.runs_dir}` : '(the server was started without a runs folder)';
    const runs = body.data || [];
    $('runs-body').replaceChildren(...runs.map((r) => el('tr', { 'data-run': r.name, onclick: () => this.show(r.name), class: this.current === r.name ? 'current' : '' },
      el('td', {}, r.name),
      el('td', {}, r.model || ''),
      el('td', { class: 'num' }, r.steps ? `${r.last_step} / ${r.steps}` : String(r.last_step)),
      el('td', { class: 'num' }, fmt(r.train_loss)),
      el('td', { class: 'num' }, fmt(r.best_valid_loss)),
      el('td', {}, r.adapter ? '✓' : 'running or stopped'),
      el('td', {}, r.reports.length ? `${r.reports.length} report${r.reports.length > 1 ? 's' : ''}` : ''),
      el('td', {}, new Date(r.modified).toLocaleString()))));
    $('runs-empty').hidden = runs.length > 0;
  }

  async loadJobs() {
    let body;
    try {
      body = await apiJSON('/v1/fine_tuning/jobs?limit=50');
    } catch {
      $('runs-jobs-card').hidden = true; // a server without the jobs API
      return;
    }
    $('runs-jobs-card').hidden = false;
    $('runs-jobs-body').replaceChildren(...(body.data || []).map((j) => el('tr', { onclick: () => this.onJob(j.id) },
      el('td', {}, j.id), el('td', {}, el('span', { class: `badge ${j.status}` }, j.status)), el('td', {}, j.model),
      el('td', {}, j.fine_tuned_model || ''), el('td', { class: 'num' }, j.trained_tokens ? String(j.trained_tokens) : ''))));
  }

  async show(name) {
    this.current = name;
    for (const tr of $('runs-body').children) tr.classList.toggle('current', tr.dataset.run === name);
    const card = $('run-detail');
    card.hidden = false;
    let run;
    try {
      run = await apiJSON(`/studio/api/runs/${encodeURIComponent(name)}`);
    } catch (err) {
      $('run-title').textContent = name;
      $('run-meta').replaceChildren(el('p', { class: 'error' }, err.message));
      return;
    }
    $('run-title').textContent = run.name;
    const rows = [
      ['model', run.model], ['data', run.data], ['method', run.method && `${run.method}${run.rank ? ` r=${run.rank} α=${run.alpha}` : ''}`],
      ['targets', run.targets?.join(', ')], ['steps', run.steps ? `${run.last_step} / ${run.steps}` : run.last_step],
      ['train loss', fmt(run.train_loss)], ['validation loss', run.valid_loss !== undefined ? `${fmt(run.valid_loss)} (best ${fmt(run.best_valid_loss)})` : ''],
      ['tokens/s', fmt(run.tokens_per_sec, 3)], ['time', duration(run.elapsed_s)],
      ['adapter', run.adapter ? `${run.adapter} (${fmt(run.adapter_bytes / 1048576, 3)} MiB)` : 'not written yet'],
      ['problem', run.problem],
    ].filter(([, v]) => v !== undefined && v !== '' && v !== null);
    $('run-meta').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
    const recs = run.records || [];
    const of = (kind, key) => recs.filter((r) => r.kind === kind && Number.isFinite(r[key])).map((r) => [r.step, r[key]]);
    lineChart($('run-loss'), [
      { name: 'train loss', cls: 'train', points: of('train', 'loss') },
      { name: 'validation loss', cls: 'valid', points: of('eval', 'loss'), dots: true },
    ], { title: 'loss' });
    lineChart($('run-lr'), [{ name: 'learning rate', cls: 'lr', points: of('train', 'lr') }], { title: 'learning rate' });
    $('run-reports').replaceChildren(...(run.reports.length ? run.reports.map((rep) => this.report(run.name, rep)) : [el('p', { class: 'muted' }, 'No eval report in this run. `ecotune eval ... -o RUN/eval` writes one.')]));
  }

  report(run, rep) {
    const link = (file, label) => file && el('a', { href: fileURL(run, file), class: 'report-link', target: '_blank', rel: 'noopener', onclick: (ev) => openFile(ev, run, file) }, label);
    const parts = [el('h3', {}, rep.dir ? `report in ${rep.dir}/` : 'report'), el('p', {}, link(rep.html, 'open report.html'), ' ', link(rep.json, 'report.json'), ' ', link(rep.md, 'report.md'))];
    if (Array.isArray(rep.systems) && rep.systems.length) {
      const metrics = [['exact_match', 'EM'], ['f1', 'F1'], ['bleu', 'BLEU'], ['rougeL', 'ROUGE-L']];
      parts.push(el('table', { class: 'report-table' },
        el('thead', {}, el('tr', {}, el('th', {}, 'system'), ...metrics.map(([, l]) => el('th', { class: 'num' }, l)), el('th', { class: 'num' }, 'loss'))),
        el('tbody', {}, ...rep.systems.map((s) => el('tr', {}, el('td', {}, s.name),
          ...metrics.map(([k]) => { const v = s.metrics?.[k]; return el('td', { class: 'num' }, fmt(typeof v === 'object' && v ? v.score ?? v.bleu : v, 3)); }),
          el('td', { class: 'num' }, fmt(s.loss?.mean_nll)))))));
    }
    return el('div', { class: 'report' }, ...parts);
  }
}

function fileURL(run, file) {
  return `/studio/api/runs/${encodeURIComponent(run)}/files/${file.split('/').map(encodeURIComponent).join('/')}`;
}

// openFile fetches a report with the API key (a plain link cannot carry it) and opens it.
async function openFile(ev, run, file) {
  ev.preventDefault();
  const win = window.open('', '_blank');
  const res = await api(fileURL(run, file));
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  if (win) win.location = url; else location.assign(url);
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
