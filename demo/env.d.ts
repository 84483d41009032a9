// For `tsc -p demo` (npm run typecheck): it checks the demo's .ts files; the .vue files are
// compiled by Vite and only seen here as components.
declare module '*.vue' {
  import type { DefineComponent } from 'vue';
  const component: DefineComponent<object, object, unknown>;
  export default component;
}
declare module '*.css';
