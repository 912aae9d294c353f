//! The CRI runtime: a CRI v1 client (the `k8s-cri` bindings) over a unix socket, tested
//! against containerd. What the kubelet needs from a sandbox and cannot ask CRI for (its
//! log directory, host networking) travels in the sandbox's annotations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use super::*;

use super::cri_convert::{self as convert, ANN_HOST_NETWORK, ANN_LOG_DIR};

pub struct CriRuntime {
    rt: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    version: String,
    node_ip: String,
}

fn err(s: tonic::Status) -> Error {
    match s.code() {
        tonic::Code::NotFound => Error::NotFound(s.message().to_string()),
        _ => Error::Io(format!("CRI: {}", s.message())),
    }
}

impl CriRuntime {
    /// Connects to the CRI socket at `path` and checks that it speaks CRI v1.
    pub async fn connect(path: &Path, node_ip: &str) -> Result<CriRuntime> {
        if !path.exists() {
            return Err(Error::Io(format!(
                "--cri-socket {}: no such socket (is the runtime, e.g. containerd, running?)",
                path.display()
            )));
        }
        let p: PathBuf = path.to_path_buf();
        let ch = Endpoint::try_from("http://[::]:50051")
            .map_err(|e| Error::Io(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let p = p.clone();
                async move { tokio::net::UnixStream::connect(p).await.map(TokioIo::new) }
            }))
            .await
            .map_err(|e| Error::Io(format!("--cri-socket {}: {e}", path.display())))?;
        let mut rt = RuntimeServiceClient::new(ch.clone());
        let v = rt
            .version(cri::VersionRequest {
                version: "v1".into(),
            })
            .await
            .map_err(|e| {
                Error::Io(format!(
                    "--cri-socket {}: not a CRI v1 runtime: {}",
                    path.display(),
                    e.message()
                ))
            })?
            .into_inner();
        Ok(CriRuntime {
            rt,
            images: ImageServiceClient::new(ch),
            version: format!("{}://{}", v.runtime_name, v.runtime_version),
            node_ip: node_ip.into(),
        })
    }

    fn sandbox_of(
        &self,
        id: String,
        md: Option<cri::PodSandboxMetadata>,
        ann: &std::collections::HashMap<String, String>,
        labels: &std::collections::HashMap<String, String>,
        ready: bool,
        ip: String,
    ) -> Sandbox {
        let md = md.unwrap_or_default();
        Sandbox {
            id,
            config: SandboxConfig {
                uid: md.uid,
                namespace: md.namespace,
                name: md.name,
                host_network: ann.get(ANN_HOST_NETWORK).is_some_and(|v| v == "true"),
                log_dir: PathBuf::from(ann.get(ANN_LOG_DIR).cloned().unwrap_or_default()),
                labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                security: Default::default(),
                dns: None,
            },
            ip,
            ready,
            netns: None,
        }
    }

    async fn sandbox_ip(&self, id: &str, host_network: bool) -> String {
        if host_network {
            return self.node_ip.clone();
        }
        let st = self
            .rt
            .clone()
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: false,
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().status);
        st.and_then(|s| s.network)
            .map(|n| n.ip)
            .filter(|ip| !ip.is_empty())
            .unwrap_or_else(|| self.node_ip.clone())
    }

    async fn find_sandbox(&self, id: &str) -> Result<Sandbox> {
        self.list_pod_sandboxes()
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::NotFound(format!("sandbox {id}")))
    }
}

#[async_trait]
impl Runtime for CriRuntime {
    fn name(&self) -> &'static str {
        "cri"
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    async fn run_pod_sandbox(&self, cfg: &SandboxConfig) -> Result<Sandbox> {
        std::fs::create_dir_all(&cfg.log_dir)?;
        let id = self
            .rt
            .clone()
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(convert::sandbox_config(cfg)),
                runtime_handler: String::new(),
            })
            .await
            .map_err(err)?
            .into_inner()
            .pod_sandbox_id;
        let ip = self.sandbox_ip(&id, cfg.host_network).await;
        Ok(Sandbox {
            id,
            config: cfg.clone(),
            ip,
            ready: true,
            netns: None,
        })
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        self.rt
            .clone()
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        self.stop_pod_sandbox(id).await?;
        self.rt
            .clone()
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<Sandbox>> {
        let items = self
            .rt
            .clone()
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
            .await
            .map_err(err)?
            .into_inner()
            .items;
        let mut out = Vec::new();
        for s in items {
            let ready = s.state == cri::PodSandboxState::SandboxReady as i32;
            let host = s
                .annotations
                .get(ANN_HOST_NETWORK)
                .is_some_and(|v| v == "true");
            let ip = if ready {
                self.sandbox_ip(&s.id, host).await
            } else {
                String::new()
            };
            out.push(self.sandbox_of(
                s.id.clone(),
                s.metadata.clone(),
                &s.annotations,
                &s.labels,
                ready,
                ip,
            ));
        }
        Ok(out)
    }

    async fn pull_image(&self, image: &str) -> Result<()> {
        let spec = cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        };
        let present = self
            .images
            .clone()
            .image_status(cri::ImageStatusRequest {
                image: Some(spec.clone()),
                verbose: false,
            })
            .await
            .map_err(err)?
            .into_inner()
            .image
            .is_some();
        if present {
            return Ok(());
        }
        self.images
            .clone()
            .pull_image(cri::PullImageRequest {
                image: Some(spec),
                auth: None,
                sandbox_config: None,
            })
            .await
            .map_err(|s| Error::Io(format!("pulling image {image:?}: {}", s.message())))?;
        Ok(())
    }

    async fn list_images(&self) -> Result<Vec<String>> {
        let imgs = self
            .images
            .clone()
            .list_images(cri::ListImagesRequest { filter: None })
            .await
            .map_err(err)?
            .into_inner()
            .images;
        Ok(imgs.into_iter().flat_map(|i| i.repo_tags).collect())
    }

    async fn create_container(&self, sandbox_id: &str, cfg: &ContainerConfig) -> Result<String> {
        let sb = self.find_sandbox(sandbox_id).await?;
        let log_path = cfg
            .log_path
            .strip_prefix(&sb.config.log_dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| PathBuf::from(format!("{}/{}.log", cfg.name, cfg.attempt)));
        let c = convert::container_config(cfg, &log_path);
        let r = self
            .rt
            .clone()
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.into(),
                config: Some(c),
                sandbox_config: Some(convert::sandbox_config(&sb.config)),
            })
            .await
            .map_err(|s| {
                Error::Unsupported(format!(
                    "creating container {:?}: {}",
                    cfg.name,
                    s.message()
                ))
            })?;
        Ok(r.into_inner().container_id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.rt
            .clone()
            .start_container(cri::StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .map_err(|s| Error::Unsupported(s.message().to_string()))?;
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        self.rt
            .clone()
            .stop_container(cri::StopContainerRequest {
                container_id: id.into(),
                timeout: grace.as_secs() as i64,
            })
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        match self
            .rt
            .clone()
            .remove_container(cri::RemoveContainerRequest {
                container_id: id.into(),
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(err(s)),
        }
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let st = self
            .rt
            .clone()
            .container_status(cri::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .map_err(err)?
            .into_inner()
            .status
            .ok_or_else(|| Error::NotFound(format!("container {id}")))?;
        Ok(convert::status(st))
    }

    async fn list_containers(&self, sandbox_id: &str) -> Result<Vec<ContainerStatus>> {
        let items = self
            .rt
            .clone()
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    pod_sandbox_id: sandbox_id.into(),
                    ..Default::default()
                }),
            })
            .await
            .map_err(err)?
            .into_inner()
            .containers;
        let mut out = Vec::new();
        for c in items {
            let mut st = self.container_status(&c.id).await?;
            st.sandbox_id = c.pod_sandbox_id;
            out.push(st);
        }
        Ok(out)
    }

    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecResult> {
        let r = self
            .rt
            .clone()
            .exec_sync(cri::ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.to_vec(),
                timeout: timeout.as_secs().max(1) as i64,
            })
            .await
            .map_err(err)?
            .into_inner();
        Ok(ExecResult {
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
        })
    }

    async fn exec_interactive(
        &self,
        id: &str,
        cmd: &[String],
        stdin: bool,
        tty: bool,
    ) -> Result<super::interactive::Interactive> {
        let req = super::cri_stream::exec_request(id, cmd, stdin, tty);
        let url = self
            .rt
            .clone()
            .exec(req)
            .await
            .map_err(err)?
            .into_inner()
            .url;
        super::cri_stream::connect(&url, stdin, tty).await
    }

    async fn attach(
        &self,
        id: &str,
        stdin: bool,
        tty: bool,
    ) -> Result<super::interactive::Interactive> {
        let req = cri::AttachRequest {
            container_id: id.into(),
            stdin,
            tty,
            stdout: true,
            stderr: !tty,
        };
        let url = self
            .rt
            .clone()
            .attach(req)
            .await
            .map_err(err)?
            .into_inner()
            .url;
        super::cri_stream::connect(&url, stdin, tty).await
    }

    async fn update_pod_cidr(&self, cidr: &str) -> Result<()> {
        self.rt
            .clone()
            .update_runtime_config(cri::UpdateRuntimeConfigRequest {
                runtime_config: Some(cri::RuntimeConfig {
                    network_config: Some(cri::NetworkConfig {
                        pod_cidr: cidr.into(),
                    }),
                }),
            })
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn usage(&self, id: &str) -> Result<Usage> {
        let s = self
            .rt
            .clone()
            .container_stats(cri::ContainerStatsRequest {
                container_id: id.into(),
            })
            .await
            .map_err(err)?
            .into_inner()
            .stats
            .ok_or_else(|| Error::NotFound(format!("stats of {id}")))?;
        Ok(Usage {
            cpu_nanos: s
                .cpu
                .and_then(|c| c.usage_core_nano_seconds)
                .map_or(0, |v| v.value),
            memory_bytes: s
                .memory
                .and_then(|m| m.working_set_bytes)
                .map_or(0, |v| v.value),
        })
    }
}
