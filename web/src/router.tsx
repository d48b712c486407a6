/** A tiny History API router: the console has five pages, no library needed. */
import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { name: 'inbox' }
  | { name: 'login' }
  | { name: 'history' }
  | { name: 'audit' }
  | { name: 'access' }
  | { name: 'request'; id: number }
  | { name: 'missing' };

export function parseRoute(path: string): Route {
  if (path === '/' || path === '') return { name: 'inbox' };
  if (path === '/login') return { name: 'login' };
  if (path === '/history') return { name: 'history' };
  if (path === '/audit') return { name: 'audit' };
  if (path === '/access') return { name: 'access' };
  const m = /^\/requests\/(\d+)\/?$/.exec(path);
  if (m) return { name: 'request', id: Number(m[1]) };
  return { name: 'missing' };
}

const listeners = new Set<() => void>();

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  for (const l of listeners) l();
  window.scrollTo(0, 0);
}

export function useLocation(): { path: string; search: string } {
  const [loc, setLoc] = useState({ path: location.pathname, search: location.search });
  useEffect(() => {
    const update = () => setLoc({ path: location.pathname, search: location.search });
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return loc;
}

export function Link(
  props: { href: string; children: ComponentChildren } & Omit<JSX.HTMLAttributes<HTMLAnchorElement>, 'href'>,
) {
  const { href, children, ...rest } = props;
  return (
    <a
      {...rest}
      href={href}
      onClick={(e) => {
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}
