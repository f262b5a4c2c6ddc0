
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'lpp' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'lpp'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'lpp' {
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('install', 'install', [CompletionResultType]::ParameterValue, 'Install the provisioner''s objects into the cluster (server-side apply)')
            [CompletionResult]::new('manifests', 'manifests', [CompletionResultType]::ParameterValue, 'Print the objects `install` would apply, without contacting a cluster')
            [CompletionResult]::new('uninstall', 'uninstall', [CompletionResultType]::ParameterValue, 'Remove what `install` created; data directories on nodes are never touched')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show what is installed, who provisions, volumes per node and what needs attention')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run the provisioning loop in the foreground until Ctrl-C')
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'List volume directories on nodes that no PV references (see `gc prune`)')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Walk through provisioning a volume and reclaiming it, narrated')
            [CompletionResult]::new('sandbox', 'sandbox', [CompletionResultType]::ParameterValue, 'The embedded single-machine Kubernetes API whose nodes are local directories')
            [CompletionResult]::new('completion', 'completion', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Print the client''s version, git revision and target, and the server''s version when reachable')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Write the completion scripts and man pages into a directory (used to refresh the repository)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'lpp;install' {
            [CompletionResult]::new('--storage-class', '--storage-class', [CompletionResultType]::ParameterName, 'Name of the StorageClass to create')
            [CompletionResult]::new('--provisioner-name', '--provisioner-name', [CompletionResultType]::ParameterName, 'Provisioner name the StorageClass names and the provisioner serves')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Base directory for volumes on every node [default: /opt/local-path-provisioner]')
            [CompletionResult]::new('--node-path', '--node-path', [CompletionResultType]::ParameterName, 'Base directory for volumes on one node, as NODE=DIR; repeatable')
            [CompletionResult]::new('--shared-path', '--shared-path', [CompletionResultType]::ParameterName, 'A filesystem shared by all nodes (RWX volumes, no node affinity)')
            [CompletionResult]::new('--reclaim-policy', '--reclaim-policy', [CompletionResultType]::ParameterName, 'What happens to a volume''s data when its claim is deleted')
            [CompletionResult]::new('--binding-mode', '--binding-mode', [CompletionResultType]::ParameterName, 'When a volume is provisioned')
            [CompletionResult]::new('--volume-type', '--volume-type', [CompletionResultType]::ParameterName, 'PV source type of new volumes')
            [CompletionResult]::new('--helper-image', '--helper-image', [CompletionResultType]::ParameterName, 'Image of the helper pods that create and delete directories on nodes')
            [CompletionResult]::new('--image', '--image', [CompletionResultType]::ParameterName, 'Image of the in-cluster Deployment [default: the image the Containerfile builds, tagged with this version]')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Only show what would be applied: `client` renders locally, `server` asks the API server')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long --wait waits')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('--default-class', '--default-class', [CompletionResultType]::ParameterName, 'Make the StorageClass the cluster''s default')
            [CompletionResult]::new('--in-cluster', '--in-cluster', [CompletionResultType]::ParameterName, 'Also run the provisioner in the cluster, as a Deployment running `lpp run`')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Wait until the installed objects are ready (the Deployment with --in-cluster)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'lpp;manifests' {
            [CompletionResult]::new('--storage-class', '--storage-class', [CompletionResultType]::ParameterName, 'Name of the StorageClass to create')
            [CompletionResult]::new('--provisioner-name', '--provisioner-name', [CompletionResultType]::ParameterName, 'Provisioner name the StorageClass names and the provisioner serves')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Base directory for volumes on every node [default: /opt/local-path-provisioner]')
            [CompletionResult]::new('--node-path', '--node-path', [CompletionResultType]::ParameterName, 'Base directory for volumes on one node, as NODE=DIR; repeatable')
            [CompletionResult]::new('--shared-path', '--shared-path', [CompletionResultType]::ParameterName, 'A filesystem shared by all nodes (RWX volumes, no node affinity)')
            [CompletionResult]::new('--reclaim-policy', '--reclaim-policy', [CompletionResultType]::ParameterName, 'What happens to a volume''s data when its claim is deleted')
            [CompletionResult]::new('--binding-mode', '--binding-mode', [CompletionResultType]::ParameterName, 'When a volume is provisioned')
            [CompletionResult]::new('--volume-type', '--volume-type', [CompletionResultType]::ParameterName, 'PV source type of new volumes')
            [CompletionResult]::new('--helper-image', '--helper-image', [CompletionResultType]::ParameterName, 'Image of the helper pods that create and delete directories on nodes')
            [CompletionResult]::new('--image', '--image', [CompletionResultType]::ParameterName, 'Image of the in-cluster Deployment [default: the image the Containerfile builds, tagged with this version]')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('--default-class', '--default-class', [CompletionResultType]::ParameterName, 'Make the StorageClass the cluster''s default')
            [CompletionResult]::new('--in-cluster', '--in-cluster', [CompletionResultType]::ParameterName, 'Also run the provisioner in the cluster, as a Deployment running `lpp run`')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'lpp;uninstall' {
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long --wait waits')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Uninstall even while PVs of the served StorageClasses exist (their data stays on the nodes)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Only show what would be deleted')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Wait until the deleted objects are gone')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'lpp;status' {
            [CompletionResult]::new('--provisioner-name', '--provisioner-name', [CompletionResultType]::ParameterName, 'Provisioner name whose Lease, classes and volumes to show')
            [CompletionResult]::new('--events-since', '--events-since', [CompletionResultType]::ParameterName, 'How far back to show Warning events')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'lpp;run' {
            [CompletionResult]::new('--provisioner-name', '--provisioner-name', [CompletionResultType]::ParameterName, 'Provisioner name to serve; StorageClasses naming it are ours')
            [CompletionResult]::new('--config-map', '--config-map', [CompletionResultType]::ParameterName, 'ConfigMap (in the provisioner''s namespace) holding config.json, setup, teardown and helperPod.yaml; watched and reloaded on change')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read config.json from this file instead of the ConfigMap (reloaded when it changes)')
            [CompletionResult]::new('--helper-pod-file', '--helper-pod-file', [CompletionResultType]::ParameterName, 'Read the helper pod template from this file instead of the ConfigMap')
            [CompletionResult]::new('--service-account-name', '--service-account-name', [CompletionResultType]::ParameterName, 'ServiceAccount the helper pods run as')
            [CompletionResult]::new('--helper-image', '--helper-image', [CompletionResultType]::ParameterName, 'Image of the helper pods, replacing the template''s [default: the template''s image]')
            [CompletionResult]::new('--workers', '--workers', [CompletionResultType]::ParameterName, 'Operations in flight at once (waiting on a helper pod holds no worker)')
            [CompletionResult]::new('--provisioning-retry-count', '--provisioning-retry-count', [CompletionResultType]::ParameterName, 'Retries of a failed provisioning before giving up until the claim changes; 0 retries forever (as upstream)')
            [CompletionResult]::new('--deletion-retry-count', '--deletion-retry-count', [CompletionResultType]::ParameterName, 'Retries of a failed reclaim before giving up until the volume changes; 0 retries forever (as upstream)')
            [CompletionResult]::new('--metrics-addr', '--metrics-addr', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics on /metrics and health on /healthz and /readyz at this address')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log line format: text (one line per action), or json (one object per line; action lines carry action, object, node, path and seconds fields)')
            [CompletionResult]::new('--lease-name', '--lease-name', [CompletionResultType]::ParameterName, 'Name of the Lease [default: the provisioner name with ''/'' replaced by ''-'']')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('--allow-unsafe-helper-pod-template', '--allow-unsafe-helper-pod-template', [CompletionResultType]::ParameterName, 'Accept a helper pod template that fails the safety checks (extra volumes, privileges, ...)')
            [CompletionResult]::new('--no-leader-election', '--no-leader-election', [CompletionResultType]::ParameterName, 'Do not take the provisioner Lease (two provisioners may then both act)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'lpp;gc' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Only this node; repeatable')
            [CompletionResult]::new('--storage-class', '--storage-class', [CompletionResultType]::ParameterName, 'Only the base paths of this StorageClass')
            [CompletionResult]::new('--older-than', '--older-than', [CompletionResultType]::ParameterName, 'Only entries not modified for this long (so nothing being provisioned right now is listed)')
            [CompletionResult]::new('--provisioner-name', '--provisioner-name', [CompletionResultType]::ParameterName, 'Provisioner name whose ConfigMap names the base paths')
            [CompletionResult]::new('--config-map', '--config-map', [CompletionResultType]::ParameterName, 'ConfigMap (in the provisioner''s namespace) naming the base paths and the helper template')
            [CompletionResult]::new('--helper-image', '--helper-image', [CompletionResultType]::ParameterName, 'Image of the inventory helper pods [default: the template''s image]')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('--exit-code', '--exit-code', [CompletionResultType]::ParameterName, 'Fail (exit 1) when orphans are found, for cron and CI')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Delete (or --archive) what `gc` lists, after confirmation')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'lpp;gc;prune' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Only this node; repeatable')
            [CompletionResult]::new('--storage-class', '--storage-class', [CompletionResultType]::ParameterName, 'Only the base paths of this StorageClass')
            [CompletionResult]::new('--older-than', '--older-than', [CompletionResultType]::ParameterName, 'Only entries not modified for this long (so nothing being provisioned right now is listed)')
            [CompletionResult]::new('--provisioner-name', '--provisioner-name', [CompletionResultType]::ParameterName, 'Provisioner name whose ConfigMap names the base paths')
            [CompletionResult]::new('--config-map', '--config-map', [CompletionResultType]::ParameterName, 'ConfigMap (in the provisioner''s namespace) naming the base paths and the helper template')
            [CompletionResult]::new('--helper-image', '--helper-image', [CompletionResultType]::ParameterName, 'Image of the inventory helper pods [default: the template''s image]')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Only show what would be deleted')
            [CompletionResult]::new('--archive', '--archive', [CompletionResultType]::ParameterName, 'Move each directory to <base>/.lpp-trash/ instead of deleting it')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'lpp;gc;help' {
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Delete (or --archive) what `gc` lists, after confirmation')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'lpp;gc;help;prune' {
            break
        }
        'lpp;gc;help;help' {
            break
        }
        'lpp;demo' {
            [CompletionResult]::new('--storage-class', '--storage-class', [CompletionResultType]::ParameterName, 'StorageClass of the demo''s claim')
            [CompletionResult]::new('--image', '--image', [CompletionResultType]::ParameterName, 'Image of the demo pod')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long each step may wait')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('--sandbox', '--sandbox', [CompletionResultType]::ParameterName, 'Run against the embedded sandbox cluster instead of the current context')
            [CompletionResult]::new('--non-interactive', '--non-interactive', [CompletionResultType]::ParameterName, 'Run straight through without waiting for Enter (automatic when stdin is not a terminal)')
            [CompletionResult]::new('--keep', '--keep', [CompletionResultType]::ParameterName, 'Leave the demo''s objects in place at the end')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'lpp;sandbox' {
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Serve a sandbox cluster on 127.0.0.1 in the foreground until Ctrl-C')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'lpp;sandbox;up' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'Directory holding the nodes'' filesystems and the sandbox''s state')
            [CompletionResult]::new('--nodes', '--nodes', [CompletionResultType]::ParameterName, 'Number of nodes')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port on 127.0.0.1; 0 picks a free one')
            [CompletionResult]::new('--write-kubeconfig', '--write-kubeconfig', [CompletionResultType]::ParameterName, 'Write a kubeconfig (context lpp-sandbox) here once the API is ready')
            [CompletionResult]::new('--disk', '--disk', [CompletionResultType]::ParameterName, 'Declare a node path a disk of SIZE, e.g. node-1:/opt/local-path-provisioner=10Gi; options ,fs=TYPE (default ext4) and ,mountpoint=false (a directory on a disk mounted higher up); repeatable. The directory is made on the node; used is what is stored under it, available the rest of SIZE')
            [CompletionResult]::new('--fault-error-rate', '--fault-error-rate', [CompletionResultType]::ParameterName, 'Fault injection: fraction of requests answered 500 Internal Server Error (0..1)')
            [CompletionResult]::new('--fault-throttle-rate', '--fault-throttle-rate', [CompletionResultType]::ParameterName, 'Fault injection: fraction of requests answered 429 Too Many Requests (0..1)')
            [CompletionResult]::new('--fault-watch-drop-rate', '--fault-watch-drop-rate', [CompletionResultType]::ParameterName, 'Fault injection: chance per event that a watch stream is dropped (0..1)')
            [CompletionResult]::new('--fault-latency', '--fault-latency', [CompletionResultType]::ParameterName, 'Fault injection: latency added to every request, e.g. 20ms')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'lpp;sandbox;help' {
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Serve a sandbox cluster on 127.0.0.1 in the foreground until Ctrl-C')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'lpp;sandbox;help;up' {
            break
        }
        'lpp;sandbox;help;help' {
            break
        }
        'lpp;completion' {
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'lpp;version' {
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'lpp;generate' {
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use [default: the current context]')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The provisioner''s namespace [default: local-path-storage]; for `demo`, the namespace the demo''s claim and pod go to [default: a fresh lpp-demo-* namespace]')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client''s defaults')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format, where the command has one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output; NO_COLOR in the environment means never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to confirmations (needed to change things without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output; repeat for more (-vv)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'lpp;help' {
            [CompletionResult]::new('install', 'install', [CompletionResultType]::ParameterValue, 'Install the provisioner''s objects into the cluster (server-side apply)')
            [CompletionResult]::new('manifests', 'manifests', [CompletionResultType]::ParameterValue, 'Print the objects `install` would apply, without contacting a cluster')
            [CompletionResult]::new('uninstall', 'uninstall', [CompletionResultType]::ParameterValue, 'Remove what `install` created; data directories on nodes are never touched')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show what is installed, who provisions, volumes per node and what needs attention')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run the provisioning loop in the foreground until Ctrl-C')
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'List volume directories on nodes that no PV references (see `gc prune`)')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Walk through provisioning a volume and reclaiming it, narrated')
            [CompletionResult]::new('sandbox', 'sandbox', [CompletionResultType]::ParameterValue, 'The embedded single-machine Kubernetes API whose nodes are local directories')
            [CompletionResult]::new('completion', 'completion', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Print the client''s version, git revision and target, and the server''s version when reachable')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Write the completion scripts and man pages into a directory (used to refresh the repository)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'lpp;help;install' {
            break
        }
        'lpp;help;manifests' {
            break
        }
        'lpp;help;uninstall' {
            break
        }
        'lpp;help;status' {
            break
        }
        'lpp;help;run' {
            break
        }
        'lpp;help;gc' {
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Delete (or --archive) what `gc` lists, after confirmation')
            break
        }
        'lpp;help;gc;prune' {
            break
        }
        'lpp;help;demo' {
            break
        }
        'lpp;help;sandbox' {
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Serve a sandbox cluster on 127.0.0.1 in the foreground until Ctrl-C')
            break
        }
        'lpp;help;sandbox;up' {
            break
        }
        'lpp;help;completion' {
            break
        }
        'lpp;help;version' {
            break
        }
        'lpp;help;generate' {
            break
        }
        'lpp;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
