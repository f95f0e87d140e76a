//! Windows: the agent under the Service Control Manager (SCM).
//!
//! `vigil-agent run` first offers itself to the SCM's service dispatcher; when the SCM did
//! not start the process (a technician runs it in a console), the dispatcher refuses at once
//! and the agent runs in the foreground as on Linux. As a service it reports Running, then
//! StopPending while it says goodbye and drains, then Stopped. Stop, preshutdown and shutdown
//! controls cancel the same shutdown token as Ctrl-C, with the Goodbye reason [`super::stop`]
//! decides. A suspend does not stop the service: the agent says goodbye with the reason
//! "sleep" before the handler lets the machine sleep, and connects again on resume.
//!
//! `install` creates the service (automatic start, restarted on failure, started now);
//! `uninstall` stops and deletes it, then removes the agent's files.

use super::stop::{action_for_service_control, ControlAction, ServiceControlEvent};
use super::{
    prepare_files, remove_dir_except, InstallOptions, ServiceError, UninstallOptions, SERVICE_NAME,
};
use crate::config::AgentConfig;
use crate::run::Agent;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use windows_service::service::{
    PowerEventParam, ServiceAccess, ServiceAction, ServiceActionType, ServiceControl,
    ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceFailureActions,
    ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus,
    ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_dispatcher;
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

/// ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: the process was not started by the SCM.
const NOT_STARTED_BY_SCM: i32 = 1063;
/// ERROR_PROCESS_ABORTED: how the service stops when it cannot go on.
const PROCESS_ABORTED: u32 = 1067;
/// ERROR_SERVICE_DOES_NOT_EXIST.
const NO_SUCH_SERVICE: i32 = 1060;
/// How long the SCM is told to wait for the goodbye and the last acks.
const STOP_WAIT_HINT: Duration = Duration::from_secs(20);
/// How long the control handler holds a suspend back for the goodbye; Windows allows about
/// two seconds.
const SLEEP_GOODBYE_WAIT: Duration = Duration::from_millis(1800);

/// The config the service runs with; the dispatcher's entry point takes no context.
static SERVICE_CONFIG: OnceLock<PathBuf> = OnceLock::new();

windows_service::define_windows_service!(ffi_service_main, service_main);

/// Runs the agent as the service if the SCM started this process, and returns true once the
/// service has stopped; returns false at once when started from a console.
pub fn run_if_started_by_scm(config: PathBuf) -> Result<bool, ServiceError> {
    let _ = SERVICE_CONFIG.set(config);
    match service_dispatcher::start(SERVICE_NAME, ffi_service_main) {
        Ok(()) => Ok(true),
        Err(windows_service::Error::Winapi(error))
            if error.raw_os_error() == Some(NOT_STARTED_BY_SCM) =>
        {
            Ok(false)
        }
        Err(error) => Err(scm("starting the service dispatcher", error)),
    }
}

fn service_main(_arguments: Vec<OsString>) {
    if let Err(error) = run_service() {
        tracing::error!(%error, "the service stopped on an error");
    }
}

fn run_service() -> Result<(), ServiceError> {
    let shutdown = CancellationToken::new();
    let config_path = SERVICE_CONFIG.get().cloned().unwrap_or_default();
    let loaded = AgentConfig::load(&config_path);
    let agent = loaded
        .as_ref()
        .ok()
        .map(|config| Agent::new(config.clone()));
    let stop_reason = agent.as_ref().map(Agent::stop_reason).unwrap_or_default();
    let power = agent.as_ref().map(Agent::power).unwrap_or_default();
    let handler_shutdown = shutdown.clone();
    let status = service_control_handler::register(SERVICE_NAME, move |control| {
        let event = match control {
            ServiceControl::Interrogate => return ServiceControlHandlerResult::NoError,
            ServiceControl::Stop => ServiceControlEvent::Stop,
            ServiceControl::Preshutdown => ServiceControlEvent::Preshutdown,
            ServiceControl::Shutdown => ServiceControlEvent::Shutdown,
            ServiceControl::PowerEvent(PowerEventParam::Suspend) => ServiceControlEvent::Suspend,
            ServiceControl::PowerEvent(
                PowerEventParam::ResumeAutomatic | PowerEventParam::ResumeSuspend,
            ) => ServiceControlEvent::Resume,
            ServiceControl::PowerEvent(_) => ServiceControlEvent::OtherPowerEvent,
            _ => return ServiceControlHandlerResult::NotImplemented,
        };
        match action_for_service_control(event) {
            ControlAction::Stop(reason) => {
                stop_reason.set(reason);
                handler_shutdown.cancel();
            }
            // The machine sleeps once this handler returns: hold it for the goodbye.
            ControlAction::Sleep => {
                tracing::info!("the machine is going to sleep");
                power.going_to_sleep();
                if !power.wait_until_said(SLEEP_GOODBYE_WAIT) {
                    tracing::warn!("the machine sleeps before the collector took the goodbye");
                }
            }
            ControlAction::Resume => {
                tracing::info!("the machine woke up");
                power.resumed();
            }
            ControlAction::Nothing => {}
        }
        ServiceControlHandlerResult::NoError
    })
    .map_err(|error| scm("registering the service control handler", error))?;
    let report = move |state: ServiceState, accepted: ServiceControlAccept, exit_code: u32| {
        let _ = status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accepted,
            exit_code: ServiceExitCode::Win32(exit_code),
            checkpoint: 0,
            wait_hint: if state == ServiceState::StopPending {
                STOP_WAIT_HINT
            } else {
                Duration::ZERO
            },
            process_id: None,
        });
    };
    let (Ok(config), Some(agent)) = (loaded, agent) else {
        // ERROR_BAD_CONFIGURATION: the SCM shows it, the event log has the details.
        report(ServiceState::Stopped, ServiceControlAccept::empty(), 1610);
        return Err(ServiceError::NotEnrolled {
            dir: config_path.parent().map(PathBuf::from).unwrap_or_default(),
        });
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = crate::run::runtime().map_err(|source| ServiceError::Io {
        action: "starting the async runtime for",
        path: config_path.clone(),
        source,
    })?;
    report(
        ServiceState::Running,
        ServiceControlAccept::STOP
            | ServiceControlAccept::PRESHUTDOWN
            | ServiceControlAccept::SHUTDOWN
            | ServiceControlAccept::POWER_EVENT,
        0,
    );
    tracing::info!(collector = %config.collector, "vigil-agent service running");
    let ran = runtime.block_on(async {
        let stopping = shutdown.clone();
        let announce = tokio::spawn(async move {
            stopping.cancelled().await;
            report(ServiceState::StopPending, ServiceControlAccept::empty(), 0);
        });
        let ran = agent.run(shutdown.clone()).await;
        shutdown.cancel();
        let _ = announce.await;
        ran
    });
    match ran {
        Ok(()) => report(ServiceState::Stopped, ServiceControlAccept::empty(), 0),
        Err(error) => {
            tracing::error!(%error);
            // A non-zero exit code is a failure: the SCM's recovery actions restart the agent.
            report(
                ServiceState::Stopped,
                ServiceControlAccept::empty(),
                PROCESS_ABORTED,
            );
        }
    }
    Ok(())
}

/// Writes the agent's files, creates the service (automatic start, LocalSystem, restarted on
/// failure) and, with `start`, starts it.
pub fn install(options: &InstallOptions) -> Result<(), ServiceError> {
    let layout = &options.layout;
    prepare_files(layout)?;
    if !layout.is_system() {
        return Ok(());
    }
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(|error| {
        scm(
            "connecting to the Service Control Manager (run as an administrator)",
            error,
        )
    })?;
    let executable = std::env::current_exe().map_err(ServiceError::io(
        "finding this program",
        &PathBuf::from("vigil-agent.exe"),
    ))?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: "Vigil agent".into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: executable,
        launch_arguments: vec![
            "run".into(),
            "--config".into(),
            layout.config_path().into_os_string(),
        ],
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG
                | ServiceAccess::START
                | ServiceAccess::QUERY_STATUS
                | ServiceAccess::DELETE,
        )
        .map_err(|error| scm("creating the service", error))?;
    // The service runs without these settings, so one the system refuses is a warning.
    for refused in configure(&service) {
        tracing::warn!("{refused}; the service is installed without it");
    }
    if options.start {
        service
            .start::<&OsStr>(&[])
            .map_err(|error| scm("starting the service", error))?;
    }
    Ok(())
}

/// Description, restart on failure (5 s, 30 s, then every minute; the count resets after a
/// day), and time for the goodbye at shutdown. Returns what the system refused.
fn configure(service: &windows_service::service::Service) -> Vec<ServiceError> {
    let restart = |seconds| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(seconds),
    };
    let settings = [
        (
            "setting the service's description",
            service.set_description("Reports this machine's health to the MSP's Vigil collector"),
        ),
        (
            "setting the service's restart on failure",
            service.update_failure_actions(ServiceFailureActions {
                reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
                reboot_msg: None,
                command: None,
                actions: Some(vec![restart(5), restart(30), restart(60)]),
            }),
        ),
        (
            "setting the service's restart after a non-crash failure",
            service.set_failure_actions_on_non_crash_failures(true),
        ),
        (
            "setting the service's preshutdown timeout",
            service.set_preshutdown_timeout(STOP_WAIT_HINT),
        ),
    ];
    settings
        .into_iter()
        .filter_map(|(action, result)| result.err().map(|error| scm(action, error)))
        .collect()
}

/// Stops and deletes the service, then removes the agent's files (all but the spool with
/// `keep_spool`).
pub fn uninstall(options: &UninstallOptions) -> Result<(), ServiceError> {
    let layout = &options.layout;
    if layout.is_system() {
        remove_service()?;
    }
    // The state folder is inside the config folder on Windows.
    let keep_state = options.keep_spool.then_some("state");
    retry_while_in_use(|| remove_dir_except(&layout.config_dir(), keep_state))?;
    if options.keep_spool {
        retry_while_in_use(|| remove_dir_except(&layout.state_dir(), Some("spool")))?;
    }
    Ok(())
}

/// A stopped service's process may hold its log and spool files for a moment after it
/// reported Stopped: retries while Windows says they are in use, for up to ten seconds.
fn retry_while_in_use(
    mut remove: impl FnMut() -> Result<(), ServiceError>,
) -> Result<(), ServiceError> {
    /// ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION.
    const IN_USE: [i32; 2] = [32, 33];
    for _ in 0..40 {
        match remove() {
            Err(ServiceError::Io { source, .. })
                if source
                    .raw_os_error()
                    .is_some_and(|code| IN_USE.contains(&code)) =>
            {
                std::thread::sleep(Duration::from_millis(250));
            }
            done => return done,
        }
    }
    remove()
}

fn remove_service() -> Result<(), ServiceError> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(|error| {
            scm(
                "connecting to the Service Control Manager (run as an administrator)",
                error,
            )
        })?;
    let service = match manager.open_service(
        SERVICE_NAME,
        ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
    ) {
        Ok(service) => service,
        Err(windows_service::Error::Winapi(error))
            if error.raw_os_error() == Some(NO_SUCH_SERVICE) =>
        {
            return Ok(());
        }
        Err(error) => return Err(scm("opening the service", error)),
    };
    let stopped = |service: &windows_service::service::Service| {
        service
            .query_status()
            .is_ok_and(|status| status.current_state == ServiceState::Stopped)
    };
    if !stopped(&service) {
        let _ = service.stop();
        // The agent says goodbye before it stops; give it the time it asked for.
        for _ in 0..(STOP_WAIT_HINT.as_secs() * 2 + 10) {
            if stopped(&service) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    service
        .delete()
        .map_err(|error| scm("deleting the service", error))
}

fn scm(action: &str, error: windows_service::Error) -> ServiceError {
    ServiceError::ServiceManager(format!("{action}: {error}"))
}
