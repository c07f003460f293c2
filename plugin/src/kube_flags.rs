//! kubectl's connection flags, read as kubectl reads them: kubectl hands a plugin its arguments
//! untouched, so `kubectl ecsrun --context prod -n jobs ...` must mean here what it means to kubectl.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};

#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeFlags {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config; in a Pod, its service
    /// account).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use (the ECS cluster is `run --ecs-cluster`).
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Namespace (default: the context's).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
}

impl KubeFlags {
    /// The client configuration these flags select, and the namespace to work in.
    pub async fn config(&self) -> anyhow::Result<(kube::Config, String)> {
        let options =
            KubeConfigOptions { context: self.context.clone(), cluster: self.cluster.clone(), user: self.user.clone() };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .with_context(|| format!("using the kubeconfig {}{}", path.display(), self.selection()))?
            }
            // No flag: as kubectl, $KUBECONFIG or ~/.kube/config, and in a Pod its service account.
            None if self.context.is_none() && self.cluster.is_none() && self.user.is_none() => kube::Config::infer()
                .await
                .context("cannot find Kubernetes: check KUBECONFIG or `kubectl config current-context`")?,
            None => kube::Config::from_kubeconfig(&options)
                .await
                .with_context(|| format!("using $KUBECONFIG or ~/.kube/config{}", self.selection()))?,
        };
        let namespace = self.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
        Ok((config, namespace))
    }

    /// The flags that chose a context, cluster or user, for error messages.
    fn selection(&self) -> String {
        [("context", &self.context), ("cluster", &self.cluster), ("user", &self.user)]
            .iter()
            .filter_map(|(flag, value)| value.as_ref().map(|value| format!(" --{flag} {value}")))
            .collect::<Vec<_>>()
            .join("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kube: KubeFlags,
        #[command(subcommand)]
        verb: Verb,
    }

    #[derive(clap::Subcommand)]
    enum Verb {
        Describe { run: String },
    }

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context: {cluster: dev-cluster, user: dev-user, namespace: sandbox}
- name: prod
  context: {cluster: prod-cluster, user: prod-user, namespace: jobs}
clusters:
- name: dev-cluster
  cluster: {server: "https://127.0.0.1:6443"}
- name: prod-cluster
  cluster: {server: "https://127.0.0.2:6443"}
- name: dr-cluster
  cluster: {server: "https://127.0.0.3:6443"}
users:
- name: dev-user
  user: {token: dev-token}
- name: prod-user
  user: {token: prod-token}
"#;

    fn kubeconfig_file() -> (tempfile::NamedTempFile, String) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, KUBECONFIG.as_bytes()).unwrap();
        let path = file.path().display().to_string();
        (file, path)
    }

    async fn config_of(args: &[&str]) -> anyhow::Result<(kube::Config, String)> {
        let cli = Cli::try_parse_from(["kubectl-ecsrun"].iter().chain(args))?;
        cli.kube.config().await
    }

    fn token(config: &kube::Config) -> Option<String> {
        use secrecy::ExposeSecret;
        config.auth_info.token.as_ref().map(|token| token.expose_secret().to_owned())
    }

    #[tokio::test]
    async fn the_current_context_is_used_unless_flags_say_otherwise() {
        let (_guard, path) = kubeconfig_file();
        let (config, namespace) = config_of(&["--kubeconfig", &path, "describe", "r"]).await.unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!((namespace.as_str(), token(&config).as_deref()), ("sandbox", Some("dev-token")));
    }

    #[tokio::test]
    async fn context_cluster_user_and_namespace_select_as_in_kubectl_before_or_after_the_verb() {
        let (_guard, path) = kubeconfig_file();
        let (config, namespace) =
            config_of(&["describe", "r", "--kubeconfig", &path, "--context", "prod"]).await.unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.2:6443/");
        assert_eq!((namespace.as_str(), token(&config).as_deref()), ("jobs", Some("prod-token")));

        let (config, namespace) = config_of(&[
            "--kubeconfig",
            &path,
            "--context",
            "prod",
            "--cluster",
            "dr-cluster",
            "--user",
            "dev-user",
            "describe",
            "r",
            "-n",
            "other",
        ])
        .await
        .unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.3:6443/");
        assert_eq!((namespace.as_str(), token(&config).as_deref()), ("other", Some("dev-token")));
    }

    #[tokio::test]
    async fn an_unknown_context_or_file_says_which() {
        let (_guard, path) = kubeconfig_file();
        let error = config_of(&["--kubeconfig", &path, "--context", "staging", "describe", "r"]).await.unwrap_err();
        assert!(format!("{error:#}").contains("--context staging"), "{error:#}");
        let error = config_of(&["--kubeconfig", "/nonexistent/kubeconfig", "describe", "r"]).await.unwrap_err();
        assert!(format!("{error:#}").contains("/nonexistent/kubeconfig"), "{error:#}");
    }
}
