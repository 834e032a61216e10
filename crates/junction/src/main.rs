//! `junction`: the WAMP router binary. It only wires the layers together: read and validate the
//! whole configuration before binding anything, start the listeners, wait for a signal, shut
//! down gracefully.
#![forbid(unsafe_code)]

mod cli;
mod config;
mod realms;
mod remote;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::{TcpListener, UnixListener};

use config::{Config, LogFormat, Overrides};
use junction_core::{Persistence, Router, RouterConfig};
use junction_store::Store;
use junction_transport::{
    HttpEndpoints, Services, Shutdown, Tls, TlsFiles, run_timers, serve_tcp, serve_tls, serve_unix,
};
use metrics_exporter_prometheus::PrometheusBuilder;

/// jemalloc rather than the system allocator: fewer instructions per routed message and less
/// memory per idle session (docs/benchmarks.md, "Eighth round").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Junction, a WAMP router.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    location: Location,
}

#[derive(Subcommand)]
enum Command {
    /// Run the router.
    Serve {
        /// A TOML configuration file (see docs/configuration.md).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to serve WebSocket and RawSocket on (repeatable); overrides `listen`.
        #[arg(long, value_name = "HOST:PORT")]
        listen: Vec<std::net::SocketAddr>,
        /// Directory for durable state; overrides `data_dir`.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Unix domain socket to serve RawSocket on; overrides `unix_socket`.
        #[arg(long, value_name = "PATH")]
        unix_socket: Option<PathBuf>,
    },
    /// Administer realms, users, groups and grants: in the data directory of a stopped router,
    /// or through the admin API of a running one with `--url`.
    #[command(flatten)]
    Admin(cli::Admin),
}

/// Where an administration command works.
#[derive(clap::Args)]
struct Location {
    /// The configuration file (for `data_dir` and `admin_realm`).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// The data directory; overrides `data_dir`.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// A running router's WebSocket URL (`ws://HOST:PORT/ws` or `wss://HOST:PORT/ws`): run the
    /// command through its admin API instead of on the data directory.
    #[arg(long, value_name = "URL", global = true, env = "JUNCTION_URL")]
    url: Option<String>,
    /// With a `wss://` URL: PEM certificates to trust instead of the system's (a private CA).
    #[arg(long, value_name = "FILE", global = true, env = "JUNCTION_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// With a `wss://` URL: a PEM certificate (chain) to present, for a router whose
    /// `tls.client_ca` asks for client certificates.
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        env = "JUNCTION_CLIENT_CERT",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// The PEM private key of `--client-cert`.
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        env = "JUNCTION_CLIENT_KEY",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
    /// With `--url`: the authid to join the admin realm as (ticket authentication).
    #[arg(long, global = true, env = "JUNCTION_ADMIN_AUTHID")]
    admin_authid: Option<String>,
    /// With `--url`: that user's password.
    #[arg(long, global = true, env = "JUNCTION_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

/// Exit code for a configuration error (sysexits.h `EX_CONFIG`).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, overrides, admin) = match cli.command {
        Command::Serve { config, listen, data_dir, unix_socket } => {
            let config = config.or(cli.location.config.clone());
            let data_dir = data_dir.or(cli.location.data_dir.clone());
            (
                config,
                Overrides { listen: (!listen.is_empty()).then_some(listen), data_dir, unix_socket },
                None,
            )
        }
        Command::Admin(admin) => (
            cli.location.config.clone(),
            Overrides { data_dir: cli.location.data_dir.clone(), ..Overrides::default() },
            Some(admin),
        ),
    };
    let config = match Config::load(config.as_deref(), overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("junction: invalid configuration: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(admin) = admin {
        let done = match &cli.location.url {
            Some(url) => run_remote(&config, &cli.location, url, &admin),
            None => cli::run(&config, &admin),
        };
        return match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("junction: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging(&config);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        runtime.worker_threads(config.worker_threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("junction: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("junction: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs an administration command through the admin API of the router at `url`.
fn run_remote(
    config: &Config,
    location: &Location,
    url: &str,
    admin: &cli::Admin,
) -> anyhow::Result<()> {
    let remote = remote::Remote {
        url,
        ca_file: location.ca_file.as_deref(),
        client_identity: location.client_cert.as_deref().zip(location.client_key.as_deref()),
        realm: &config.admin_realm,
        authid: location
            .admin_authid
            .as_deref()
            .context("--url needs --admin-authid (or JUNCTION_ADMIN_AUTHID)")?,
        password: location.admin_password.as_deref().unwrap_or_default(),
    };
    let (procedure, args) = admin.procedure();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(remote::call(&remote, procedure, args))?;
    cli::print(&result)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JUNCTION_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Colours only on a terminal: a log file is read with grep and less.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let store = Arc::new(Store::open(&config.data_dir)?);
    let admin_realm = junction_wire::Uri::from(config.admin_realm.as_str());
    let realms =
        realms::reconcile(&store, config.router().realms, config.realms_from_file, &admin_realm)?;
    let router = Router::new(RouterConfig { realms, ..config.router() });
    let node = match &config.cluster {
        Some(cluster) => Some(
            junction_cluster::join(cluster.clone(), Arc::clone(&router), Arc::clone(&store))
                .await?,
        ),
        None => None,
    };
    let persistence: Arc<dyn Persistence> = match &node {
        Some(node) => node.persistence(),
        None => store,
    };
    router.set_persistence(persistence).map_err(anyhow::Error::msg)?;
    let services = Services {
        router,
        config: Arc::new(config.transport()),
        http: Arc::new(HttpEndpoints {
            metrics: Some(Box::new(move || {
                let mut text = metrics.render();
                junction_transport::message_metrics::render(&mut text);
                text
            })),
        }),
        shutdown: Shutdown::new(),
    };

    let mut tcp = Vec::new();
    for addr in &config.listen {
        let listener =
            TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        let path = &services.config.websocket_path;
        println!(
            "junction: listening on ws://{local}{path} (WebSocket), rs://{local} (RawSocket), http://{local}/metrics"
        );
        tcp.push(listener);
    }
    let tls = match &config.tls {
        Some(settings) => {
            let files = TlsFiles {
                cert: settings.cert.clone(),
                key: settings.key.clone(),
                client_ca: settings.client_ca.clone(),
            };
            let tls = Arc::new(Tls::load(files).map_err(|e| anyhow::anyhow!("tls: {e}"))?);
            let mut listeners = Vec::new();
            for addr in &settings.listen {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                let local = listener.local_addr()?;
                let path = &services.config.websocket_path;
                println!(
                    "junction: listening on wss://{local}{path} (WebSocket over TLS), rss://{local} (RawSocket over TLS)"
                );
                listeners.push(listener);
            }
            Some((tls, listeners))
        }
        None => None,
    };
    let unix = match &config.unix_socket {
        Some(path) => {
            // A socket file left by a previous run would make bind fail.
            let _ = std::fs::remove_file(path);
            let listener = UnixListener::bind(path)
                .with_context(|| format!("cannot listen on {}", path.display()))?;
            println!("junction: listening on unix://{} (RawSocket)", path.display());
            Some((listener, path.clone()))
        }
        None => None,
    };
    let realms: Vec<String> =
        services.router.realms().iter().map(|r| r.name().to_string()).collect();
    tracing::info!(realms = ?realms, data_dir = %config.data_dir.display(), "junction started");

    tokio::spawn(run_timers(Arc::clone(&services.router), services.shutdown.clone()));
    for listener in tcp {
        tokio::spawn(serve_tcp(listener, services.clone()));
    }
    if let Some((listener, path)) = unix {
        tokio::spawn(serve_unix(listener, path, services.clone()));
    }
    if let Some((tls, listeners)) = tls {
        for listener in listeners {
            tokio::spawn(serve_tls(listener, services.clone(), Arc::clone(&tls)));
        }
        let rotated = Arc::clone(&tls);
        services.router.set_tls_rotation(Box::new(move || {
            rotated.reload().inspect(|()| tracing::info!("TLS certificate reloaded (admin call)"))
        }));
        tokio::spawn(reload_tls_on_sighup(tls));
    }

    wait_for_signal().await?;
    let shutdown = &services.shutdown;
    tracing::info!(sessions = services.router.session_count(), "shutting down");
    shutdown.begin();
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    if !shutdown.wait(grace).await {
        tracing::warn!(
            remaining = shutdown.connections(),
            ?grace,
            "grace period ran out; closing remaining connections"
        );
    }
    if let Some(node) = node {
        node.leave().await;
    }
    Ok(())
}

/// Re-reads the TLS certificate and key on every SIGHUP; a bad file keeps the old ones.
async fn reload_tls_on_sighup(tls: Arc<Tls>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return tracing::warn!("cannot watch SIGHUP: TLS certificates will not be reloaded");
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(error) => {
                tracing::warn!(%error, "TLS certificate not reloaded; keeping the previous one")
            }
        }
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot watch SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
