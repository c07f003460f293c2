// Tekton Pipelines' controller for ecsrun's end-to-end tests: the pinned module's own reconcilers
// (TaskRun, PipelineRun, ResolutionRequest), started as its cmd/controller starts them, except that
// every HTTP listener is on 127.0.0.1 (upstream's probes and profiling servers listen on all
// interfaces, and the tests start servers on loopback only) and there is no leader election (one
// replica). Everything else is knative's sharedmain, step for step.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"

	"github.com/go-logr/zapr"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun"
	"github.com/tektoncd/pipeline/pkg/reconciler/resolutionrequest"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	filteredinformerfactory "knative.dev/pkg/client/injection/kube/informers/factory/filtered"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/injection/sharedmain"
	"knative.dev/pkg/logging"
	k8sruntime "knative.dev/pkg/observability/runtime/k8s"
	"knative.dev/pkg/signals"
)

func main() {
	opts := &pipeline.Options{}
	// The images of Tekton's own Pods: a pipeline of custom tasks creates none, but they must be named.
	flag.StringVar(&opts.Images.EntrypointImage, "entrypoint-image", "entrypoint", "")
	flag.StringVar(&opts.Images.SidecarLogResultsImage, "sidecarlogresults-image", "sidecarlogresults", "")
	flag.StringVar(&opts.Images.NopImage, "nop-image", "nop", "")
	flag.StringVar(&opts.Images.ShellImage, "shell-image", "shell", "")
	flag.StringVar(&opts.Images.ShellImageWin, "shell-image-win", "shell-win", "")
	flag.StringVar(&opts.Images.WorkingDirInitImage, "workingdirinit-image", "workingdirinit", "")
	flag.DurationVar(&opts.ResyncPeriod, "resync-period", controller.DefaultResyncPeriod, "")
	cfg := injection.ParseAndGetRESTConfigOrDie()
	if err := opts.Images.Validate(); err != nil {
		log.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 4*rest.DefaultQPS, 4*rest.DefaultBurst

	ctx := sharedmain.WithHADisabled(signals.NewContext())
	ctx = filteredinformerfactory.WithSelectors(ctx, v1beta1.ManagedByLabelKey)
	ctx = controller.WithResyncPeriod(ctx, opts.ResyncPeriod)
	run(ctx, "tekton-pipelines-controller", cfg,
		taskrun.NewController(opts, clock.RealClock{}),
		pipelinerun.NewController(opts, clock.RealClock{}),
		resolutionrequest.NewController(clock.RealClock{}),
	)
}

// run is sharedmain.MainWithConfig with its profiling server on 127.0.0.1 and no health probes server.
func run(ctx context.Context, component string, cfg *rest.Config, ctors ...injection.ControllerConstructor) {
	ctx, startInformers := injection.EnableInjectionOrDie(ctx, cfg)
	logger, atomicLevel := sharedmain.SetupLoggerOrDie(ctx, component)
	defer logger.Sync()
	ctx = logging.WithLogger(ctx, logger)
	klog.SetLogger(zapr.NewLogger(logger.Desugar()))

	pprof := k8sruntime.NewProfilingServer(logger.Named("pprof"))
	pprof.Addr = "127.0.0.1:" + os.Getenv("PROFILING_PORT")

	sharedmain.CheckK8sClientMinimumVersionOrDie(ctx, logger)
	cmw := sharedmain.SetupConfigMapWatchOrDie(ctx, logger)
	mp, tp := sharedmain.SetupObservabilityOrDie(ctx, component, logger, pprof)
	defer func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	}()

	controllers, _ := sharedmain.ControllersAndWebhooksFromCtors(ctx, cmw, ctors...)
	sharedmain.WatchLoggingConfigOrDie(ctx, cmw, logger, atomicLevel, component)
	sharedmain.WatchObservabilityConfigOrDie(ctx, cmw, pprof, logger, component)

	eg, egCtx := errgroup.WithContext(ctx)
	eg.Go(pprof.ListenAndServe)
	if err := cmw.Start(ctx.Done()); err != nil {
		logger.Fatalw("Failed to start configmap watcher", zap.Error(err))
	}
	startInformers()
	logger.Info("Starting controllers...")
	eg.Go(func() error { return controller.StartAll(ctx, controllers...) })
	<-egCtx.Done()
	pprof.Shutdown(context.Background())
	if err := eg.Wait(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Errorw("Error while running server", zap.Error(err))
	}
}
