//! `groupguard run`: the long-running bot.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Context as _;
use groupguard_core::command::load_rules;
use groupguard_core::engine::Engine;
use groupguard_core::platform::EventSink;
use groupguard_core::ports::{Clock, Store};
use groupguard_sql::SqlStore;
use tokio::sync::{Notify, mpsc, watch};

use crate::clock::SystemClock;
use crate::config::{Config, LogFormat, redact_url};
use crate::dispatch::journal::Sink;
use crate::dispatch::journal_file::FileJournal;
use crate::dispatch::{self, RateLimiter, Shared};
use crate::http::{HttpState, router};
use crate::metrics::Metrics;

/// Loads the configuration (reporting every problem) and runs until SIGINT or SIGTERM.
pub fn run(config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = match Config::load(config_file, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!(
                "the configuration has {} problem{}:",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            for e in &errors {
                eprintln!("  {e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    if config.adapters.is_empty() {
        eprintln!(
            "no chat platform is configured: add an adapter section to the config file \
             (adapters in this build: {}). `groupguard simulate` works without one.",
            crate::platforms::in_build()
        );
        return Ok(ExitCode::from(2));
    }
    init_logging(&config);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let (journal, replayed) = FileJournal::open(&config.data_dir.join("journal"))
        .context("cannot open the inbound journal")?;
    let store = SqlStore::open(config.database_url.expose())
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact_url(config.database_url.expose())
            )
        })?;
    tracing::info!(database = %redact_url(config.database_url.expose()), "store open");
    let store: Arc<dyn Store> = Arc::new(store);

    let revision = store
        .revision()
        .await
        .context("cannot read the configuration revision")?;
    let live = load_rules(store.as_ref())
        .await
        .context("the stored configuration does not compile")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    tracing::info!(
        rules = live.rules().len(),
        blacklist = live.blacklist().len(),
        "rules loaded"
    );
    let rules = Arc::new(live);
    let mut engine = Engine::with_handle(Arc::clone(&rules));
    let restored = engine
        .restore_ladders(store.as_ref(), clock.now())
        .await
        .context("cannot read past violations")?;
    tracing::info!(violations = restored, "ladder counters restored");

    let adapters = config
        .adapters
        .iter()
        .map(|a| a.start(&clock, &rules))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("cannot start the platform adapters")?;
    let mut executors = HashMap::new();
    for executor in adapters.iter().flat_map(|a| a.executors()) {
        executors.insert(executor.platform(), executor);
    }
    let mirrors = adapters.iter().flat_map(|a| a.mirrors()).collect();

    let metrics = Arc::new(Metrics::new());
    let http = Arc::new(HttpState {
        metrics: Arc::clone(&metrics),
        ready: AtomicBool::new(false),
        adapters: adapters.clone(),
    });
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http_listen))?;
    tracing::info!(address = %listener.local_addr()?, "http listening");
    let (stop_tx, stop_rx) = watch::channel(false);
    let (sink, handovers) = Sink::channel(config.dispatcher.queue);
    let sink: Arc<dyn EventSink> = Arc::new(sink);
    let (queue, queued) = mpsc::channel(config.dispatcher.queue);
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn({
        let app = router(&http, &sink);
        async move {
            let shutdown = async move {
                let _ = http_stop.wait_for(|stop| *stop).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "http server failed");
            }
        }
    });
    let adapter_tasks: Vec<_> = adapters
        .iter()
        .map(|adapter| {
            tracing::info!(adapter = adapter.name(), "adapter starting");
            tokio::spawn(Arc::clone(adapter).run(Arc::clone(&sink), stop_rx.clone()))
        })
        .collect();
    // The journal's queue closes when the last adapter and the HTTP routes are done with it.
    drop(sink);

    let limits = config
        .rate_limits
        .iter()
        .map(|(platform, rate)| (*platform, RateLimiter::per_second(*rate)))
        .collect();
    let shared = Arc::new(Shared {
        store,
        journal,
        rules,
        executors,
        metrics,
        clock,
        dispatcher: config.dispatcher.clone(),
        raid: config.raid.clone(),
        limits,
        outbox_wake: Notify::new(),
        revision: AtomicU64::new(revision),
        stop: stop_rx.clone(),
    });
    let journal = tokio::spawn(dispatch::journal::run(
        Arc::clone(&shared),
        replayed,
        handovers,
        queue,
    ));
    let events = tokio::spawn(dispatch::events::run(Arc::clone(&shared), engine, queued));
    let outbox = tokio::spawn(dispatch::outbox::run(Arc::clone(&shared), stop_rx.clone()));
    let reloader = tokio::spawn(dispatch::run_reloader(Arc::clone(&shared), stop_rx.clone()));
    let pruner = tokio::spawn(dispatch::run_pruner(Arc::clone(&shared), stop_rx.clone()));
    let mirror = tokio::spawn(dispatch::mirror::run(
        Arc::clone(&shared),
        mirrors,
        stop_rx.clone(),
    ));
    http.ready.store(true, Ordering::Relaxed);
    tracing::info!("groupguard is running");

    shutdown_signal().await;
    tracing::info!("shutting down: draining queued events and due actions");
    http.ready.store(false, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    for adapter in adapter_tasks {
        let _ = adapter.await;
    }
    // Callbacks in flight finish before the queue can drain.
    let _ = http_task.await;
    let _ = journal.await;
    let _ = events.await;
    shared.outbox_wake.notify_one();
    let _ = outbox.await;
    let _ = reloader.await;
    let _ = pruner.await;
    let _ = mirror.await;
    if let Err(e) = shared.journal.close() {
        tracing::warn!(error = %e, "cannot tidy the inbound journal");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
