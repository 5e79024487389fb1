/* Self-custody in the browser: an injected EIP-1193 wallet (MetaMask and the like) signs in with
   Ethereum, links itself to the signed-in account, and pays for a compute job with one buy+order
   transaction it signs itself. The marketplace never sees its key.

   Bundled with ethers by frontend/build.mjs into static/frontend/vendor/wallet.bundle.js (no CDN).
   Pages opt in with elements carrying data-wallet-action ("login", "link", "pay" or "reclaim") and a status
   region named by their aria-controls. Everything else goes through the REST API:
     POST /api/v1/auth/siwe/nonce/ -> personal_sign -> POST /api/v1/auth/siwe/verify/
     POST /api/v1/orders/prepare/ -> eth_signTypedData_v4 (permit) -> POST /api/v1/orders/prepare/
       -> eth_sendTransaction (buyAndOrder) -> POST /api/v1/jobs/ with tx_hash */

import { BrowserProvider, Signature, getAddress, toQuantity } from "ethers";

const API = {
  chain: "/api/v1/chain/",
  nonce: "/api/v1/auth/siwe/nonce/",
  verify: "/api/v1/auth/siwe/verify/",
  wallets: "/api/v1/wallets/",
  prepare: "/api/v1/orders/prepare/",
  jobs: "/api/v1/jobs/",
};
const RECEIPT_WAIT_MS = 45000;
const RECEIPT_POLL_MS = 1000;

export class WalletError extends Error {
  constructor(message, code, extra) {
    super(message);
    this.code = code;
    Object.assign(this, extra || {});
  }
}

/* --- finding the wallet: EIP-6963 announcements first, else window.ethereum --- */

const announced = [];
window.addEventListener("eip6963:announceProvider", (event) => {
  const detail = event.detail;
  if (!detail || !detail.provider) return;
  const uuid = detail.info && detail.info.uuid;
  if (!announced.some((p) => p.info && p.info.uuid === uuid)) announced.push(detail);
});
window.dispatchEvent(new Event("eip6963:requestProvider"));

export function injectedWallet() {
  if (announced.length) return announced[0].provider;
  return window.ethereum || null;
}

function requireWallet() {
  const eth = injectedWallet();
  if (!eth || typeof eth.request !== "function") {
    throw new WalletError(
      "No browser wallet found. Install MetaMask (or another Ethereum wallet extension), unlock it and reload " +
        "this page.",
      "no_wallet",
    );
  }
  return eth;
}

/* --- errors in words --- */

function errorCode(err) {
  if (!err) return undefined;
  const candidates = [
    err.code,
    err.info && err.info.error && err.info.error.code,
    err.error && err.error.code,
    err.data && err.data.originalError && err.data.originalError.code,
  ];
  for (const code of candidates) {
    if (code !== undefined && code !== null) return code;
  }
  return undefined;
}

function isRejected(err) {
  const code = errorCode(err);
  const inner = err && err.info && err.info.error && err.info.error.code;
  return code === 4001 || code === "ACTION_REJECTED" || inner === 4001;
}

export function explain(err) {
  if (isRejected(err)) return "You rejected the request in your wallet, so nothing was signed, sent or paid.";
  const code = errorCode(err);
  if (code === 4100) return "Your wallet has not authorised this site: unlock it, allow this site and try again.";
  if (code === -32002) return "Your wallet is already showing a request from this site: open it and answer it.";
  if (code === 4900 || code === 4901) return "Your wallet is not connected to a network. Connect it and try again.";
  if (err instanceof WalletError) return err.message;
  // ethers wraps the wallet's own error (info.error), whose message says more than the wrapper's.
  const message = err && ((err.info && err.info.error && err.info.error.message) || err.shortMessage || err.message);
  return message ? `Your wallet reported an error: ${message}` : "Something went wrong with your wallet.";
}

/* --- the marketplace's API, with the session's CSRF token --- */

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

async function api(url, { method = "GET", json, form } = {}) {
  const headers = { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: "same-origin" });
  } catch (err) {
    throw new WalletError("The marketplace could not be reached. Check your connection and try again.", "network");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    const detail = (data && data.detail) || `The marketplace answered with an error (${response.status}).`;
    throw new WalletError(detail, (data && data.code) || `http_${response.status}`, { status: response.status });
  }
  return data;
}

/* --- the status region next to a button --- */

function progress(root) {
  function show(state, text, action) {
    root.hidden = false;
    root.dataset.walletState = state;
    const box = document.createElement(state === "error" ? "div" : "p");
    if (state === "error") {
      box.className = "alert alert-error wallet-error";
      box.setAttribute("role", "alert");
    } else if (state === "done") {
      box.className = "message message-success";
    } else {
      box.className = "wallet-step";
    }
    box.append(text);
    if (action) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button button-small button-secondary";
      button.textContent = action.label;
      button.addEventListener("click", action.run, { once: true });
      box.append(" ", button);
    }
    const nodes = [box];
    if (state === "busy") {
      const bar = document.createElement("progress");
      bar.setAttribute("aria-label", "Waiting");
      nodes.push(bar);
    }
    root.replaceChildren(...nodes);
  }
  return {
    busy: (text) => show("busy", text),
    done: (text) => show("done", text),
    error: (text, action) => show("error", text, action),
  };
}

const short = (value) => (value && value.length > 14 ? `${value.slice(0, 6)}…${value.slice(-4)}` : value);
const amount = (value) => String(Number.parseFloat(value));

/* --- chain and account --- */

let chainInfoCache = null;

async function chainInfo() {
  if (!chainInfoCache) chainInfoCache = await api(API.chain);
  return chainInfoCache;
}

async function connect(provider) {
  const accounts = await provider.send("eth_requestAccounts", []);
  if (!accounts || !accounts.length) {
    throw new WalletError("Your wallet shared no account with this site. Unlock it and try again.", "no_account");
  }
  return getAddress(accounts[0]);
}

async function ensureChain(eth) {
  const info = await chainInfo();
  const current = Number.parseInt(await eth.request({ method: "eth_chainId", params: [] }), 16);
  if (current !== info.chain_id) {
    throw new WalletError(
      `Your wallet is on the wrong network (chain ${current}); this marketplace settles on chain ${info.chain_id}.`,
      "wrong_chain",
      { chain: info },
    );
  }
  return info;
}

async function switchChain(eth, info) {
  const chainId = toQuantity(info.chain_id);
  try {
    await eth.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
  } catch (err) {
    if (errorCode(err) !== 4902) throw err;
    if (!info.wallet_rpc_url) {
      throw new WalletError(
        `Your wallet does not know chain ${info.chain_id}. Add it in your wallet's network settings and try again.`,
        "unknown_chain",
      );
    }
    await eth.request({
      method: "wallet_addEthereumChain",
      params: [
        {
          chainId,
          chainName: info.chain_id === 31337 ? "Data exchange development chain" : `Chain ${info.chain_id}`,
          rpcUrls: [info.wallet_rpc_url],
          nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
        },
      ],
    });
  }
}

async function siwe(signer, address, { createAccount = false } = {}) {
  const nonce = await api(API.nonce, { method: "POST", json: { address } });
  const signature = await signer.signMessage(nonce.message);
  return api(API.verify, {
    method: "POST",
    json: { message: nonce.message, signature, create_account: createAccount },
  });
}

async function waitForReceipt(provider, hash) {
  const until = Date.now() + RECEIPT_WAIT_MS;
  while (Date.now() < until) {
    try {
      const receipt = await provider.getTransactionReceipt(hash);
      if (receipt) return receipt;
    } catch (err) {
      /* the node may not know it yet */
    }
    await new Promise((resolve) => setTimeout(resolve, RECEIPT_POLL_MS));
  }
  return null;
}

function safeNext(next) {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

/* --- the three actions --- */

async function signIn(button, status) {
  const eth = requireWallet();
  status.busy("Connecting to your wallet…");
  const provider = new BrowserProvider(eth, "any");
  const address = await connect(provider);
  await ensureChain(eth);
  status.busy(`Waiting for your signature: sign the message in your wallet to sign in as ${short(address)}. It is free: no transaction.`);
  const signer = await provider.getSigner(address);
  const result = await siwe(signer, address, { createAccount: true });
  status.done(`Signed in as ${result.username}.`);
  window.location.assign(safeNext(button.dataset.next));
}

async function link(button, status) {
  const eth = requireWallet();
  status.busy("Connecting to your wallet…");
  const provider = new BrowserProvider(eth, "any");
  const address = await connect(provider);
  await ensureChain(eth);
  status.busy(`Waiting for your signature: sign the message in your wallet to link ${short(address)}. It is free: no transaction.`);
  const signer = await provider.getSigner(address);
  const result = await siwe(signer, address);
  status.done(`Linked ${result.wallet.address} to your account. You can now sign in with it and pay for jobs from it.`);
  const table = document.querySelector("[data-wallets-table] tbody");
  if (table && !table.textContent.includes(result.wallet.address)) {
    const row = table.insertRow();
    const head = document.createElement("th");
    head.scope = "row";
    const code = document.createElement("code");
    code.className = "hash";
    code.textContent = result.wallet.address;
    head.append(code);
    row.append(head);
    const kind = row.insertCell();
    kind.textContent = "Own wallet (self-custody, verified just now)";
    const balances = row.insertCell();
    balances.colSpan = 3;
    balances.className = "muted";
    balances.textContent = "Reload the page to see its balances.";
  }
}

async function pay(button, status) {
  const form = button.closest("form");
  const eth = requireWallet();
  status.busy("Connecting to your wallet…");
  const provider = new BrowserProvider(eth, "any");
  const address = await connect(provider);
  await ensureChain(eth);
  const signer = await provider.getSigner(address);

  const wallets = await api(API.wallets);
  if (!wallets.some((w) => w.kind === "external" && getAddress(w.address) === address)) {
    status.busy(`Waiting for your signature: link ${short(address)} to your account first (Sign-In with Ethereum; free, no transaction).`);
    await siwe(signer, address);
  }

  status.busy("Checking the parameters…");
  const job = await api(button.dataset.prepareUrl, { method: "POST", form: new FormData(form) });
  const order = {
    dataset: job.dataset,
    epsilon: job.epsilon,
    delta: job.delta,
    algorithm_hash: job.params_hash,
    wallet: address,
  };
  status.busy("Preparing the payment…");
  let prepared = await api(API.prepare, { method: "POST", json: order });
  const price = `${amount(prepared.price)} ${prepared.payment_token_symbol}`;
  if (prepared.step === "sign_permit") {
    status.busy(`Waiting for your signature: a permit letting this job's datatoken take ${price} from ${short(address)}. Nothing moves until you send the transaction.`);
    const { EIP712Domain: _domain, ...types } = prepared.permit.types;
    const signature = await signer.signTypedData(prepared.permit.domain, types, prepared.permit.message);
    status.busy("Preparing the transaction…");
    prepared = await api(API.prepare, {
      method: "POST",
      json: { ...order, permit_signature: Signature.from(signature).serialized, deadline: prepared.deadline },
    });
  }

  const tx = prepared.transaction;
  status.busy(`Waiting for you to confirm the transaction in your wallet: one transaction pays ${price} and orders the job.`);
  const hash = await signer.sendUncheckedTransaction({
    from: address,
    to: tx.to,
    data: tx.data,
    value: 0n,
    gasLimit: BigInt(tx.gas),
  });
  status.busy(`Sent (transaction ${short(hash)}). Registering the job…`);
  const created = await api(API.jobs, {
    method: "POST",
    json: { dataset: job.dataset, algorithm: job.algorithm, parameters: job.parameters, tx_hash: hash },
  });
  const jobUrl = button.dataset.jobUrl.replace(/0\/$/, `${created.id}/`);
  status.busy(`Confirming on chain (transaction ${short(hash)})…`);
  const receipt = await waitForReceipt(provider, hash);
  if (receipt && receipt.status === 0) {
    status.error("The transaction failed on chain, so nothing was paid.", {
      label: "Open the job",
      run: () => window.location.assign(jobUrl),
    });
    return;
  }
  status.done(receipt ? "Paid and confirmed. Opening the job…" : "Sent. Opening the job; it starts once the payment is confirmed.");
  window.location.assign(`${jobUrl}#job-status`);
}

async function reclaim(button, status) {
  // An order past its deadline, paid from this browser wallet: the server hands the reclaim call
  // (anyone may send it; the chain pays the buyer), the wallet sends it.
  const eth = requireWallet();
  status.busy("Connecting to your wallet…");
  const provider = new BrowserProvider(eth, "any");
  const address = await connect(provider);
  await ensureChain(eth);
  const signer = await provider.getSigner(address);
  status.busy("Preparing the reclaim…");
  const answer = await api(button.dataset.reclaimUrl, { method: "POST", json: {} });
  if (answer.transaction) {
    status.busy("Waiting for you to confirm the reclaim in your wallet…");
    const hash = await signer.sendUncheckedTransaction({
      from: address,
      to: answer.transaction.to,
      data: answer.transaction.data,
      value: 0n,
    });
    status.busy(`Sent (transaction ${short(hash)}). Waiting for the chain…`);
    const receipt = await waitForReceipt(provider, hash);
    if (receipt && receipt.status === 0) {
      status.error("The reclaim failed on chain; nothing moved.");
      return;
    }
  }
  status.done("Reclaimed: the payment goes back to the paying wallet. Reloading…");
  window.location.reload();
}

const ACTIONS = { login: signIn, link, pay, reclaim };

async function run(button, action) {
  const target = document.getElementById(button.getAttribute("aria-controls") || "");
  if (!target || button.disabled) return;
  const status = progress(target);
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await action(button, status);
  } catch (err) {
    if (err && err.code === "wrong_chain") {
      status.error(explain(err), {
        label: "Switch network",
        run: async () => {
          try {
            status.busy("Asking your wallet to switch network…");
            await switchChain(requireWallet(), err.chain);
            await run(button, action);
          } catch (again) {
            status.error(explain(again));
          }
        },
      });
    } else {
      status.error(explain(err));
    }
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

function reveal(root) {
  root.querySelectorAll("[data-wallet-ui][hidden]").forEach((el) => {
    el.hidden = false;
  });
}

document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("[data-wallet-action]");
  if (!button || !ACTIONS[button.dataset.walletAction]) return;
  event.preventDefault();
  run(button, ACTIONS[button.dataset.walletAction]);
});

function start() {
  reveal(document);
  // The job form is swapped in place when another algorithm is picked (jobs.js).
  new MutationObserver(() => reveal(document)).observe(document.body, { childList: true, subtree: true });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();

window.marketplaceWallet = { injectedWallet, explain };
