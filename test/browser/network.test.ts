/**
 * NetworkWatcher on its own, with the FakeEnvironment of fakes.ts and with partial or missing
 * environments (a worker, Node, server-side rendering): what `offline` reports, which
 * listeners watch(true) adds and watch(false) removes, and which host call each browser event
 * becomes. client.test.ts pins what the client does with those calls.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NetworkWatcher, type NetworkHost } from '../../src/browser/network.js';
import type { DuetEnvironment, EventSourceLike } from '../../src/browser/types.js';
import { FakeEnvironment } from './fakes.js';

function recorder(): { host: NetworkHost; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    host: {
      online: () => calls.push('online'),
      offline: () => calls.push('offline'),
      visible: () => calls.push('visible'),
    },
  };
}

describe('NetworkWatcher: offline', () => {
  it('is true only when navigator.onLine is false (true is a guess, false is reliable)', () => {
    const env = new FakeEnvironment();
    const watcher = new NetworkWatcher(env, recorder().host);
    assert.equal(watcher.offline, false);
    env.navigator.onLine = false;
    assert.equal(watcher.offline, true, 'read at each call, not at construction');
    env.navigator.onLine = true;
    assert.equal(watcher.offline, false);
  });

  it('is false with no environment, no navigator, or no onLine', () => {
    const { host } = recorder();
    assert.equal(new NetworkWatcher(undefined, host).offline, false);
    assert.equal(new NetworkWatcher({}, host).offline, false);
    assert.equal(new NetworkWatcher({ navigator: {} }, host).offline, false);
  });
});

describe('NetworkWatcher: listeners', () => {
  it('watch(true) listens for online and offline on window and visibilitychange on document, once each', () => {
    const env = new FakeEnvironment();
    const watcher = new NetworkWatcher(env, recorder().host);
    assert.equal(env.listening, 0, 'nothing before watch(true)');
    watcher.watch(true);
    assert.deepEqual(Object.fromEntries(env.counts), { online: 1, offline: 1, visibilitychange: 1 });
    watcher.watch(true);
    assert.deepEqual(Object.fromEntries(env.counts), { online: 1, offline: 1, visibilitychange: 1 }, 'idempotent');
  });

  it('watch(false) removes every listener it added; a second watch(false) removes nothing more', () => {
    const env = new FakeEnvironment();
    const watcher = new NetworkWatcher(env, recorder().host);
    watcher.watch(false);
    assert.equal(env.counts.size, 0, 'not watching: nothing to remove');
    watcher.watch(true);
    watcher.watch(false);
    assert.deepEqual(Object.fromEntries(env.counts), { online: 0, offline: 0, visibilitychange: 0 });
    watcher.watch(false);
    assert.deepEqual(Object.fromEntries(env.counts), { online: 0, offline: 0, visibilitychange: 0 });
    watcher.watch(true);
    assert.equal(env.listening, 3, 'and it can watch again');
  });

  it('with no environment, or one without addEventListener, watch() does nothing and does not throw', () => {
    const { host } = recorder();
    for (const env of [undefined, {}, { navigator: { onLine: false } }, { document: { visibilityState: 'visible' } }]) {
      const watcher = new NetworkWatcher(env, host);
      watcher.watch(true);
      watcher.watch(false);
    }
    const partial: DuetEnvironment = {
      navigator: { onLine: false },
      document: { visibilityState: 'visible' },
    };
    const watcher = new NetworkWatcher(partial, host);
    assert.doesNotThrow(() => watcher.watch(true));
    assert.equal(watcher.offline, true);
  });

  it('a window without a document (a worker) gets its online/offline listeners; a document alone gets visibilitychange', () => {
    const added: string[] = [];
    const target = { addEventListener: (type: string) => void added.push(type), removeEventListener: () => {} };
    new NetworkWatcher({ ...target }, recorder().host).watch(true);
    assert.deepEqual(added, ['online', 'offline']);
    added.length = 0;
    new NetworkWatcher({ document: { ...target } }, recorder().host).watch(true);
    assert.deepEqual(added, ['visibilitychange']);
  });
});

describe('NetworkWatcher: events to host calls', () => {
  it('online, offline and a visible tab become online(), offline() and visible(), in order', () => {
    const env = new FakeEnvironment();
    const { host, calls } = recorder();
    new NetworkWatcher(env, host).watch(true);
    env.goOffline();
    env.goOnline();
    env.setVisibility('visible');
    assert.deepEqual(calls, ['offline', 'online', 'visible']);
  });

  it('a tab becoming hidden calls nothing', () => {
    const env = new FakeEnvironment();
    const { host, calls } = recorder();
    new NetworkWatcher(env, host).watch(true);
    env.setVisibility('hidden');
    assert.deepEqual(calls, []);
    env.setVisibility('visible');
    assert.deepEqual(calls, ['visible']);
  });

  it('visibilitychange to any state but visible (prerender, none at all) calls nothing', () => {
    const target = new EventTarget();
    const document: EventSourceLike & { visibilityState?: string } = {
      visibilityState: 'prerender',
      addEventListener: (type, listener) => target.addEventListener(type, listener),
      removeEventListener: (type, listener) => target.removeEventListener(type, listener),
    };
    const { host, calls } = recorder();
    new NetworkWatcher({ document }, host).watch(true);
    target.dispatchEvent(new Event('visibilitychange'));
    delete document.visibilityState;
    target.dispatchEvent(new Event('visibilitychange'));
    assert.deepEqual(calls, []);
    document.visibilityState = 'visible';
    target.dispatchEvent(new Event('visibilitychange'));
    assert.deepEqual(calls, ['visible']);
  });

  it('before watch(true) and after watch(false) the events reach nothing', () => {
    const env = new FakeEnvironment();
    const { host, calls } = recorder();
    const watcher = new NetworkWatcher(env, host);
    env.goOffline();
    env.goOnline();
    env.setVisibility('visible');
    watcher.watch(true);
    env.goOffline();
    watcher.watch(false);
    env.goOnline();
    env.setVisibility('hidden');
    env.setVisibility('visible');
    assert.deepEqual(calls, ['offline']);
  });

  it('two watchers on one environment are independent: stopping one leaves the other listening', () => {
    const env = new FakeEnvironment();
    const a = recorder();
    const b = recorder();
    const watcherA = new NetworkWatcher(env, a.host);
    const watcherB = new NetworkWatcher(env, b.host);
    watcherA.watch(true);
    watcherB.watch(true);
    watcherA.watch(false);
    env.goOffline();
    assert.deepEqual(a.calls, []);
    assert.deepEqual(b.calls, ['offline']);
    watcherB.watch(false);
    assert.equal(env.listening, 0);
  });
});
