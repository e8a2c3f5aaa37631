defmodule ObjectStoreX.TestHelpers do
  @moduledoc """
  Small helpers shared by the tests: random data, plain HTTP requests with `:httpc` (loopback
  only), a TCP server that never answers, and mailbox checks.
  """

  import ExUnit.Assertions

  @doc "`n` random bytes."
  def random_bytes(0), do: ""
  def random_bytes(n), do: :crypto.strong_rand_bytes(n)

  @doc """
  A deterministic pseudo-random payload of `n` bytes that starts with `head` and ends with
  `tail` (e.g. Parquet's "PAR1" magic), for the seed guide's examples.
  """
  def framed_bytes(n, head, tail) do
    middle = n - byte_size(head) - byte_size(tail)
    head <> random_bytes(middle) <> tail
  end

  @doc """
  Sends one HTTP request with `:httpc` and returns `{status, headers, body}`, headers as a map
  with lower-case names. Refuses anything but a loopback address: the tests talk only to
  servers on this machine.
  """
  def http_request(method, url, headers \\ [], body \\ nil) do
    assert_loopback!(url)
    {:ok, _} = Application.ensure_all_started(:inets)
    headers = Enum.map(headers, fn {k, v} -> {to_charlist(k), to_charlist(v)} end)

    request =
      case body do
        nil ->
          {to_charlist(url), headers}

        body ->
          {content_type, headers} = pop_content_type(headers)
          {to_charlist(url), headers, content_type, body}
      end

    # Called through httpc/0 so that compiling test/support does not warn that the
    # application uses :inets without depending on it (only the tests need it).
    case httpc().request(method, request, [timeout: 20_000, connect_timeout: 5_000],
           body_format: :binary
         ) do
      {:ok, {{_, status, _}, resp_headers, resp_body}} ->
        {status,
         Map.new(resp_headers, fn {k, v} ->
           {k |> to_string() |> String.downcase(), to_string(v)}
         end), resp_body}

      {:error, reason} ->
        flunk("HTTP #{method} #{redact_query(url)} failed: #{inspect(reason)}")
    end
  end

  defp httpc, do: :httpc

  defp pop_content_type(headers) do
    case Enum.split_with(headers, fn {k, _} -> :string.lowercase(k) == ~c"content-type" end) do
      {[{_, ct} | _], rest} -> {ct, rest}
      {[], rest} -> {~c"application/octet-stream", rest}
    end
  end

  @doc "Asserts that `url` points at a loopback address."
  def assert_loopback!(url) do
    host = URI.parse(url).host

    assert host in ["127.0.0.1", "localhost", "::1", "[::1]"] or
             String.starts_with?(host || "", "127."),
           "refusing to send a request off this machine: #{redact_query(url)}"
  end

  @doc "The URL without its query string (which may carry a signature)."
  def redact_query(url), do: url |> String.split("?") |> hd()

  @doc """
  Starts a TCP server on 127.0.0.1 that accepts connections and never answers. Returns
  `{port, stop_fun}`. Requests to it hang until the client gives up: a deterministic way to make
  an operation outlast its `:timeout`.
  """
  def silent_server do
    {:ok, listen} =
      :gen_tcp.listen(0, [:binary, active: false, reuseaddr: true, ip: {127, 0, 0, 1}])

    {:ok, port} = :inet.port(listen)
    parent = self()

    pid =
      spawn(fn ->
        ref = Process.monitor(parent)
        accept_loop(listen, ref, [])
      end)

    :ok = :gen_tcp.controlling_process(listen, pid)

    stop = fn ->
      send(pid, :stop)
      :ok
    end

    {port, stop}
  end

  defp accept_loop(listen, ref, socks) do
    receive do
      :stop -> Enum.each([listen | socks], &:gen_tcp.close/1)
      {:DOWN, ^ref, _, _, _} -> Enum.each([listen | socks], &:gen_tcp.close/1)
    after
      0 ->
        case :gen_tcp.accept(listen, 50) do
          {:ok, sock} -> accept_loop(listen, ref, [sock | socks])
          {:error, :timeout} -> accept_loop(listen, ref, socks)
          {:error, _} -> :ok
        end
    end
  end

  @doc """
  Collects every message in the mailbox, waiting `wait_ms` for late arrivals. The tests use it
  to prove that a timed-out operation leaves no `{ref, result}` reply behind.
  """
  def drain_mailbox(wait_ms \\ 100, acc \\ []) do
    receive do
      msg -> drain_mailbox(wait_ms, [msg | acc])
    after
      wait_ms -> Enum.reverse(acc)
    end
  end

  @doc """
  Runs `fun` and returns `{result, majors}`: its result and the full (major) garbage
  collections the calling process went through meanwhile, counted by tracing it.
  """
  def major_collections(fun) do
    tracer = spawn_link(fn -> count_majors(0) end)
    :erlang.trace(self(), true, [:garbage_collection, {:tracer, tracer}])

    result =
      try do
        fun.()
      after
        :erlang.trace(self(), false, [:garbage_collection])
      end

    # Every trace message is with the tracer before it is asked for the count.
    ref = :erlang.trace_delivered(self())
    receive do: ({:trace_delivered, _, ^ref} -> :ok)
    send(tracer, {:count, self()})
    receive do: ({:majors, majors} -> {result, majors})
  end

  defp count_majors(n) do
    receive do
      {:trace, _pid, :gc_major_start, _info} -> count_majors(n + 1)
      {:trace, _pid, _other, _info} -> count_majors(n)
      {:count, from} -> send(from, {:majors, n})
    end
  end

  @doc "Asserts that `dt` is a UTC DateTime within `slack_s` seconds of [from, to]."
  def assert_recent_utc(dt, from, to, slack_s \\ 10) do
    assert %DateTime{time_zone: "Etc/UTC"} = dt
    # Built natively: it must be exactly the struct Elixir itself builds for that instant.
    assert dt == DateTime.from_unix!(DateTime.to_unix(dt, :microsecond), :microsecond)
    assert DateTime.compare(dt, DateTime.add(from, -slack_s, :second)) in [:gt, :eq]
    assert DateTime.compare(dt, DateTime.add(to, slack_s, :second)) in [:lt, :eq]
  end

  @doc """
  Runs `code` in a child BEAM that has this build's code paths (the library, its NIF and these
  test support modules), for cases where a regression could take the whole VM down. Returns
  `{output, exit_status}`; output is stdout and stderr together. `env` is added to the child's
  OS environment.
  """
  def in_child_vm(code, env \\ []) do
    paths =
      for path <- :code.get_path(),
          path = List.to_string(path),
          String.starts_with?(path, Mix.Project.build_path()),
          do: ["-pa", path]

    System.cmd(System.find_executable("elixir"), List.flatten(paths) ++ ["-e", code],
      stderr_to_stdout: true,
      env: env
    )
  end

  @doc """
  Calls `fun` and returns what it returned, failing the test if it raises, throws or exits: a
  non-bang function must return `{:error, %ObjectStoreX.Error{}}` for bad input.
  """
  def returned(fun) do
    fun.()
  catch
    kind, value ->
      ExUnit.Assertions.flunk(
        "expected {:error, %ObjectStoreX.Error{}}, the call #{kind}: #{inspect(value)}"
      )
  end

  @doc "An `:http` store for a test server on 127.0.0.1:`port`, without client retries."
  def loopback_http_store!(port) do
    ObjectStoreX.new!(:http,
      url: "http://127.0.0.1:#{port}",
      allow_http: true,
      retry: [max_retries: 0]
    )
  end

  @doc """
  Options for a store of `provider` (`:s3`, `:azure` or `:http`) at a closed port of
  127.0.0.1, without retries or environment: every request fails at once with
  `:network_error`, so an error of another reason proves that nothing was sent.
  """
  def closed_port_opts(:s3) do
    [
      bucket: "b",
      region: "us-east-1",
      endpoint: "http://127.0.0.1:1",
      access_key_id: "AKIAEXAMPLE",
      secret_access_key: "not-a-real-secret",
      allow_http: true,
      from_env: false,
      retry: [max_retries: 0]
    ]
  end

  def closed_port_opts(:azure) do
    [
      account: "devstoreaccount1",
      container: "c",
      endpoint: "http://127.0.0.1:1",
      access_key: Base.encode64("not-a-real-key"),
      allow_http: true,
      from_env: false,
      retry: [max_retries: 0]
    ]
  end

  def closed_port_opts(:http),
    do: [url: "http://127.0.0.1:1/x", allow_http: true, retry: [max_retries: 0]]

  @doc "An S3 store of `closed_port_opts(:s3)`."
  def closed_port_s3_store!, do: ObjectStoreX.new!(:s3, closed_port_opts(:s3))

  @doc """
  How many multipart uploads are in progress on the S3 test server under `store`'s prefix, as
  the server's own API (boto3) lists them.
  """
  def s3_uploads_in_progress(store) do
    python = System.fetch_env!("OBJECTSTOREX_TEST_PYTHON")
    script = Path.expand("../../scripts/s3_list_multipart.py", __DIR__)

    args = [
      script,
      System.fetch_env!("OBJECTSTOREX_TEST_S3_ENDPOINT"),
      System.fetch_env!("OBJECTSTOREX_TEST_S3_BUCKET"),
      store.prefix <> "/"
    ]

    {out, 0} = System.cmd(python, args)
    out |> String.trim() |> String.to_integer()
  end

  @doc """
  Starts `elixir -e code` in a child OS process with this project's code paths and returns its
  port (`:exit_status`, lines of output as `{:data, {:eol, line}}`): for tests that kill the
  process (`Port.info(port, :os_pid)`) part way through.
  """
  def child_vm_port(code) do
    Port.open({:spawn_executable, System.find_executable("elixir")}, [
      :binary,
      :exit_status,
      :stderr_to_stdout,
      {:line, 4096},
      args: child_vm_paths() ++ ["-e", code]
    ])
  end

  @doc """
  Runs `code` in a child `elixir` VM with this project's compiled code and `env`, and returns
  what it printed (stderr included); fails the test, with that output, unless it exits 0.

  ## Options

    * `:shell` - a bash script that starts the VM with `exec elixir "$@"`, for an environment
      that `env` cannot carry (a value that is not UTF-8)
  """
  def run_child_vm(code, env \\ [], opts \\ []) do
    args = child_vm_paths() ++ ["-e", code]

    {command, args} =
      case Keyword.fetch(opts, :shell) do
        {:ok, script} -> {"bash", ["-c", script, "bash" | args]}
        :error -> {"elixir", args}
      end

    {out, status} = System.cmd(command, args, env: env, stderr_to_stdout: true)

    if status != 0,
      do: raise(ExUnit.AssertionError, message: "the child VM exited with #{status}:\n#{out}")

    out
  end

  @doc "The `-pa` arguments that give a child `elixir` VM this project's compiled code."
  def child_vm_paths do
    for path <- :code.get_path(),
        path = List.to_string(path),
        String.starts_with?(path, Mix.Project.build_path()),
        arg <- ["-pa", path],
        do: arg
  end

  @doc "Whether `check` returns true within `tries` tries, 50 ms apart."
  def wait_until(check, tries \\ 200) do
    cond do
      check.() ->
        true

      tries == 0 ->
        false

      true ->
        Process.sleep(50)
        wait_until(check, tries - 1)
    end
  end

  @doc """
  Runs a mix task in this VM (`Mix.Task.rerun/2`); returns `{:ok | {:error, message}, stdout,
  stderr}`. Capturing standard error swaps the VM-wide device: callers are not async.
  """
  def run_mix_task(task, args) do
    parent = self()

    stderr =
      ExUnit.CaptureIO.capture_io(:stderr, fn ->
        stdout =
          ExUnit.CaptureIO.capture_io(fn ->
            result =
              try do
                Mix.Task.rerun(task, args)
                :ok
              rescue
                e in Mix.Error -> {:error, e.message}
              end

            send(parent, {:result, result})
          end)

        send(parent, {:stdout, stdout})
      end)

    result = receive(do: ({:result, result} -> result))
    stdout = receive(do: ({:stdout, stdout} -> stdout))
    {result, stdout, stderr}
  end
end
