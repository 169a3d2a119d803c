package graphkit.neo4j;

import java.io.IOException;
import java.io.PrintStream;
import java.net.BindException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.PortBindException;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.ByteUnit;
import org.neo4j.logging.NullLogProvider;
import org.neo4j.server.configuration.ServerSettings;
import org.neo4j.server.configuration.ThirdPartyJaxRsPackage;
import sun.misc.Signal;

/**
 * Runs a real Neo4j 5.26 DBMS (community kernel) with a Bolt connector on 127.0.0.1 and, on
 * request, the HTTP connector serving Neo4j Browser.
 *
 * <p>Usage: {@code Launcher [--port N] [--http-port N [--guides DIR]] [--data DIR]
 * [--pagecache SIZE] [--password PW | --password-env VAR] [--exit-on-stdin-eof]}. When the server
 * accepts connections, one line {@code HTTP http://127.0.0.1:PORT} (only with {@code --http-port})
 * and then one line {@code BOLT bolt://127.0.0.1:PORT} are printed on stdout; nothing else is
 * ever written there. SIGTERM and SIGINT shut the DBMS down cleanly and exit with status 0.
 *
 * <p>With {@code --http-port} the server serves Neo4j Browser at {@code /browser/} (the
 * {@code org.neo4j.client:neo4j-browser} jar on the class path), behind the same authentication
 * as Bolt. {@code --guides DIR} also serves the files of DIR at {@code /graphkit/} (graphkit's
 * guide and graph style sheet) and makes the Browser load {@code graphkit.grass} and play
 * {@code library.html} from there when it connects.
 *
 * <p>{@code --port 0} (and {@code --http-port 0}) picks a free port. Without {@code --data} the home is a temporary directory
 * deleted on exit. {@code --password-env} reads the password from an environment variable so it
 * stays out of the process list. {@code --exit-on-stdin-eof} shuts down when stdin closes, so a
 * parent that dies without stopping the server does not leave it running.
 */
public final class Launcher {

    private static final String HOST = "127.0.0.1";
    private static final String DEFAULT_USER = "neo4j";
    private static final int PORT_ATTEMPTS = 5;
    private static final String GUIDES_PACKAGE = "graphkit.neo4j.guide";
    private static final String GUIDES_MOUNT = "/graphkit";

    private Launcher() {}

    /** Parsed command line. */
    private record Options(
            int port,
            int httpPort,
            Path guides,
            Path data,
            String pagecache,
            String password,
            boolean exitOnStdinEof) {
        boolean http() {
            return httpPort >= 0;
        }
    }

    /** The ports one start attempt binds; {@code http} is -1 without the HTTP connector. */
    private record Ports(int bolt, int http) {}

    public static void main(String[] args) {
        // The real stdout is reserved for the single BOLT line; anything a library prints goes
        // to stderr so the caller's parser never sees it.
        PrintStream boltOut = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        System.setOut(System.err);
        int status;
        try {
            status = run(parse(args), boltOut);
        } catch (UsageException e) {
            System.err.println("launcher: " + e.getMessage());
            status = 2;
        } catch (Throwable t) {
            t.printStackTrace(System.err);
            // Last, so that a caller showing only the tail of stderr still gets the reason.
            System.err.println("launcher: failed to run Neo4j: " + rootCause(t));
            status = 1;
        }
        System.exit(status);
    }

    private static int run(Options options, PrintStream boltOut) throws Exception {
        // Installed before the (slow) start so that a SIGTERM during it is not lost: the server
        // then stops as soon as it is up instead of being killed half-started.
        CountDownLatch terminate = new CountDownLatch(1);
        Signal.handle(new Signal("TERM"), signal -> terminate.countDown());
        Signal.handle(new Signal("INT"), signal -> terminate.countDown());
        if (options.exitOnStdinEof()) {
            watchStdin(terminate);
        }

        boolean tempHome = options.data() == null;
        Path home = tempHome
                ? Files.createTempDirectory("graphkit-neo4j-")
                : Files.createDirectories(options.data()).toAbsolutePath();
        long pagecache = ByteUnit.parse(options.pagecache());
        boolean authEnabled = options.password() != null;

        if (options.guides() != null) {
            graphkit.neo4j.guide.GuideResource.serve(options.guides().toAbsolutePath());
        }
        DatabaseManagementService dbms = null;
        Ports ports = null;
        Exception lastFailure = null;
        boolean picked = options.port() == 0 || options.httpPort() == 0;
        // A port picked with ServerSocket(0) can be taken by someone else before Neo4j binds it,
        // so a failed start on a picked port is retried with a fresh one.
        for (int attempt = 0;
                attempt < PORT_ATTEMPTS && dbms == null && terminate.getCount() > 0;
                attempt++) {
            Ports candidate = new Ports(
                    options.port() == 0 ? freePort() : options.port(),
                    options.httpPort() == 0 ? freePort() : options.httpPort());
            try {
                dbms = start(home, candidate, options.guides() != null, pagecache, authEnabled);
                ports = candidate;
            } catch (RuntimeException e) {
                lastFailure = e;
                if (!picked || !isPortBindFailure(e)) {
                    break;
                }
            }
        }
        if (dbms == null) {
            if (tempHome) {
                deleteRecursively(home);
            }
            if (lastFailure == null) {
                return 0; // terminated before the first start attempt
            }
            throw lastFailure;
        }

        DatabaseManagementService running = dbms;
        AtomicBoolean stopped = new AtomicBoolean(false);
        Runnable stop = () -> {
            if (stopped.compareAndSet(false, true)) {
                running.shutdown();
                if (tempHome) {
                    deleteRecursively(home);
                }
            }
        };
        // Fallback for exits that bypass the signal handlers above (e.g. SIGHUP).
        Runtime.getRuntime().addShutdownHook(new Thread(stop, "neo4j-shutdown"));

        try {
            if (authEnabled) {
                setPassword(running, options.password());
            }
        } catch (RuntimeException e) {
            stop.run();
            // Never echo the driver/kernel message: it could quote the password.
            throw new IllegalStateException("could not set the password of user neo4j ("
                    + e.getClass().getSimpleName() + ")");
        }

        if (terminate.getCount() > 0) {
            if (ports.http() >= 0) {
                boltOut.println("HTTP http://" + HOST + ":" + ports.http());
            }
            boltOut.println("BOLT bolt://" + HOST + ":" + ports.bolt());
            boltOut.flush();
        }

        terminate.await();
        stop.run();
        return 0;
    }

    private static DatabaseManagementService start(
            Path home, Ports ports, boolean guides, long pagecache, boolean authEnabled) {
        int port = ports.bolt();
        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(home)
                .setUserLogProvider(NullLogProvider.getInstance())
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(HOST, port))
                .setConfig(BoltConnector.advertised_address, new SocketAddress(HOST, port))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                // Netty's default 5 s quiet period, paid twice, makes every stop take 10 s; the
                // databases are already checkpointed and closed by the time it applies.
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                .setConfig(HttpsConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.routing_enabled, false)
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pagecache)
                .setConfig(GraphDatabaseSettings.auth_enabled, authEnabled)
                // The caller chooses the password; Neo4j's 8-character minimum is a production
                // policy that only gets in the way of dev and test servers.
                .setConfig(GraphDatabaseSettings.auth_minimum_password_length, 1)
                // The Browser would otherwise report usage to Neo4j: this server talks to no one.
                .setConfig(ServerSettings.allow_telemetry, false)
                .setConfig(HttpConnector.enabled, ports.http() >= 0);
        if (ports.http() >= 0) {
            SocketAddress http = new SocketAddress(HOST, ports.http());
            builder.setConfig(HttpConnector.listen_address, http)
                    .setConfig(HttpConnector.advertised_address, http)
                    // Guides and style sheets may come from this server only.
                    .setConfig(ServerSettings.browser_remote_content_hostname_whitelist,
                            HOST + ",localhost");
        }
        if (ports.http() >= 0 && guides) {
            String base = "http://" + HOST + ":" + ports.http() + GUIDES_MOUNT;
            builder.setConfig(ServerSettings.third_party_packages,
                            List.of(new ThirdPartyJaxRsPackage(GUIDES_PACKAGE, GUIDES_MOUNT)))
                    // The guide is documentation, readable before logging in, like the Browser.
                    .setConfig(ServerSettings.http_auth_allowlist,
                            List.of("/", "/browser.*", GUIDES_MOUNT + "/.*"))
                    .setConfig(ServerSettings.browser_post_connect_cmd,
                            "style " + base + "/graphkit.grass; play " + base + "/library.html");
        }
        return builder.build();
    }

    /** Sets the password of user neo4j on the system database, with no change required. */
    private static void setPassword(DatabaseManagementService dbms, String password) {
        var system = dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
        try {
            system.executeTransactionally(
                    "ALTER USER " + DEFAULT_USER + " SET PASSWORD $pw CHANGE NOT REQUIRED",
                    Map.of("pw", password));
        } catch (RuntimeException e) {
            // A persistent data dir that already has this password: Neo4j refuses to "change"
            // a password to itself, which is exactly the state we want.
            String message = String.valueOf(e.getMessage());
            if (!message.contains("cannot be the same")) {
                throw e;
            }
        }
    }

    /** Counts {@code terminate} down once stdin reaches end of file (the parent has gone). */
    private static void watchStdin(CountDownLatch terminate) {
        Thread watcher = new Thread(() -> {
            try {
                while (System.in.read() != -1) {
                    // Input is meaningless here; only its end matters.
                }
            } catch (IOException e) {
                // A broken stdin means the parent is gone as well.
            }
            terminate.countDown();
        }, "stdin-watcher");
        watcher.setDaemon(true);
        watcher.start();
    }

    private static boolean isPortBindFailure(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (c instanceof PortBindException || c instanceof BindException) {
                return true;
            }
        }
        return false;
    }

    private static String rootCause(Throwable t) {
        Throwable root = t;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return root == t ? t.toString() : t + " (cause: " + root + ")";
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getByName(HOST))) {
            return socket.getLocalPort();
        }
    }

    private static void deleteRecursively(Path root) {
        if (!Files.exists(root)) {
            return;
        }
        try {
            Files.walkFileTree(root, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs)
                        throws IOException {
                    Files.deleteIfExists(file);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path dir, IOException exc)
                        throws IOException {
                    Files.deleteIfExists(dir);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException e) {
            System.err.println("launcher: could not delete temporary home " + root + ": " + e);
        }
    }

    private static Options parse(String[] args) throws UsageException {
        int port = 0;
        int httpPort = -1;
        Path guides = null;
        Path data = null;
        String pagecache = "256m";
        String password = null;
        boolean exitOnStdinEof = false;
        for (int i = 0; i < args.length; i++) {
            String flag = args[i];
            if (flag.equals("-h") || flag.equals("--help")) {
                throw new UsageException("usage: Launcher [--port N] [--http-port N "
                        + "[--guides DIR]] [--data DIR] [--pagecache SIZE] "
                        + "[--password PW | --password-env VAR] [--exit-on-stdin-eof]");
            }
            if (flag.equals("--exit-on-stdin-eof")) {
                exitOnStdinEof = true;
                continue;
            }
            if (i + 1 >= args.length) {
                throw new UsageException("missing value for " + flag);
            }
            String value = args[++i];
            switch (flag) {
                case "--port" -> port = parsePort(value, flag);
                case "--http-port" -> httpPort = parsePort(value, flag);
                case "--guides" -> guides = Path.of(value);
                case "--data" -> data = Path.of(value);
                case "--pagecache" -> pagecache = value;
                case "--password" -> password = requireNonEmpty(value, flag);
                case "--password-env" -> {
                    String fromEnv = System.getenv(value);
                    if (fromEnv == null) {
                        throw new UsageException("environment variable " + value + " is not set");
                    }
                    password = requireNonEmpty(fromEnv, flag);
                }
                default -> throw new UsageException("unknown option " + flag);
            }
        }
        try {
            ByteUnit.parse(pagecache);
        } catch (RuntimeException e) {
            throw new UsageException("invalid --pagecache size " + pagecache);
        }
        if (guides != null && httpPort < 0) {
            throw new UsageException("--guides needs --http-port");
        }
        if (guides != null && !Files.isDirectory(guides)) {
            throw new UsageException("--guides " + guides + ": not a directory");
        }
        return new Options(port, httpPort, guides, data, pagecache, password, exitOnStdinEof);
    }

    private static int parsePort(String value, String flag) throws UsageException {
        try {
            int port = Integer.parseInt(value);
            if (port < 0 || port > 65535) {
                throw new NumberFormatException();
            }
            return port;
        } catch (NumberFormatException e) {
            throw new UsageException("invalid " + flag + " " + value);
        }
    }

    private static String requireNonEmpty(String value, String flag) throws UsageException {
        if (value.isEmpty()) {
            throw new UsageException("empty password given with " + flag);
        }
        return value;
    }

    /** A command-line error; its message is shown to the user as is. */
    private static final class UsageException extends Exception {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }
}
