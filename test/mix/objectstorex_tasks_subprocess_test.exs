defmodule Mix.Tasks.ObjectstorexTasksSubprocessTest do
  # The mix objectstorex.* tasks as real `mix` processes: exit codes, output with and without a
  # terminal (script(1) provides a pseudo-terminal), binary standard output, credentials from
  # the environment, and the S3 and Azure test servers. Each run starts a VM (about a second),
  # so the in-process tests (objectstorex_tasks_test.exs) cover everything else.
  use ExUnit.Case, async: true

  # Several VM starts in one test: on a loaded machine they can outlast ExUnit's 60 s default.
  @moduletag timeout: 300_000

  import ObjectStoreX.TestHelpers

  alias ObjectStoreX.TestBackends

  @mib 1_048_576
  # Recognisable, so that any leak into the output is found. ministack does not check the
  # signatures of ordinary requests (observed), so it serves requests signed with it; it does
  # check presigned URLs, so the sign test uses the server's real secret, "test".
  @fake_secret "FAKE-SECRET-objx-3c9e1d7f5a"
  @root Path.expand("../..", __DIR__)

  setup do
    dir = TestBackends.tmp_dir!("cli-sub")
    on_exit(fn -> File.rm_rf(dir) end)
    %{dir: dir}
  end

  # Every credential variable of the test VM is unset in the child, so that a run sees exactly
  # the variables the test gives it (and never a developer's real cloud credentials).
  defp clean_env do
    for {name, _} <- System.get_env(),
        String.match?(
          name,
          ~r/^(AWS|AZURE|AZURITE|GOOGLE)_|^SERVICE_ACCOUNT$|^OBJECTSTOREX_ALLOW/
        ),
        do: {name, nil}
  end

  defp mix(args, env \\ [], opts \\ []) do
    System.cmd(
      System.find_executable("mix"),
      args,
      cd: @root,
      env: clean_env() ++ [{"MIX_ENV", "test"} | env],
      stderr_to_stdout: Keyword.get(opts, :stderr_to_stdout, true)
    )
  end

  # Runs `mix args` under a pseudo-terminal: standard output and error are the terminal.
  defp mix_tty(args, env) do
    command = Enum.map_join(["mix" | args], " ", &shell_quote/1)

    System.cmd("script", ["-qec", command, "/dev/null"],
      cd: @root,
      env: clean_env() ++ [{"MIX_ENV", "test"} | env],
      stderr_to_stdout: true
    )
  end

  defp shell_quote(arg), do: "'" <> String.replace(arg, "'", ~S('\'')) <> "'"

  defp sha256(data), do: :crypto.hash(:sha256, data) |> Base.encode16(case: :lower)

  defp write!(path, data) do
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, data)
    data
  end

  # A frame of the progress bar, redrawn in place.
  @bar ~r/\r\s*\d+% \[[#.]{24}\]  [\d.]+ [KMG]?i?B \/ [\d.]+ [KMG]?i?B/

  describe "terminal and exit codes" do
    test "a terminal gets a bar redrawn in place; a pipe gets only the summary", %{dir: dir} do
      data = write!(Path.join(dir, "src.bin"), random_bytes(24 * @mib))
      args = ["objectstorex.cp", "--checksum", "sha256", Path.join(dir, "src.bin")]

      {out, 0} = mix_tty(args ++ ["file://#{dir}/tty/data.bin"], [])
      # A local copy of 24 MiB ends within the first 100 ms report, so only the full bar is
      # certain here (reports during a copy are tested in ObjectStoreX.ProgressTest).
      assert out =~ "\r100% [########################]  24.0 MiB / 24.0 MiB"
      assert length(Regex.scan(@bar, out)) >= 2
      assert out =~ "sha256 #{sha256(data)}"
      # The summary follows the finished bar, on a line of its own.
      [_, after_bar] = String.split(out, "100% [", parts: 2)
      assert after_bar =~ ~r/\n(\e\[K)?copied .*sha256 #{sha256(data)}/

      {out, 0} = mix(args ++ ["file://#{dir}/pipe/data.bin"])
      refute out =~ @bar
      refute out =~ "\r"

      assert out =~
               ~r/^copied .*: 25165824 bytes \(24\.0 MiB\) in [\d.]+ s, [\d.]+ [KMG]?i?B\/s, sha256 #{sha256(data)}$/m

      assert File.read!(Path.join(dir, "pipe/data.bin")) == data
      assert File.read!(Path.join(dir, "tty/data.bin")) == data
    end

    test "failures exit non-zero with a message naming the problem", %{dir: dir} do
      src = Path.join(dir, "x.bin")
      write!(src, "x")

      cases = [
        {["--bogus", src, "memory://x"], "unknown option --bogus"},
        {["--part-size", "3", src, "memory://x"], "--part-size must be at least 5MiB"},
        {[Path.join(dir, "missing.bin"), "memory://x"], "missing.bin: no such file"},
        {["ftp://host/x", dir], ~s(unsupported URL scheme "ftp://")},
        {[src, "s3:///key"], "names no bucket"},
        {[src, "s3://some-bucket/key"], "no AWS credentials in the environment"}
      ]

      for {args, expected} <- cases do
        {out, status} = mix(["objectstorex.cp" | args])
        assert status != 0, "exit 0 for #{inspect(args)}:\n#{out}"
        assert out =~ expected
      end
    end

    test "memory:// is shared by the tasks of one `mix do`, and cat is binary-safe", %{dir: dir} do
      data =
        write!(
          Path.join(dir, "m.bin"),
          :binary.list_to_bin(Enum.to_list(255..0)) <> random_bytes(5 * @mib)
        )

      {out, 0} =
        mix([
          "do",
          "objectstorex.cp",
          Path.join(dir, "m.bin"),
          "memory://k/m.bin,",
          "objectstorex.cp",
          "memory://k/m.bin",
          "memory://k/copy.bin,",
          "objectstorex.cp",
          "memory://k/copy.bin",
          Path.join(dir, "back.bin")
        ])

      assert out =~ "-> #{Path.join(dir, "back.bin")}: #{byte_size(data)} bytes"
      assert File.read!(Path.join(dir, "back.bin")) == data

      {bytes, 0} = mix(["objectstorex.cat", "file://#{dir}/m.bin"], [], stderr_to_stdout: false)
      assert bytes == data
    end
  end

  describe "S3" do
    @describetag backend: :s3

    setup do
      prefix = TestBackends.unique_prefix("cli")
      bucket = System.fetch_env!("OBJECTSTOREX_TEST_S3_BUCKET")

      store = ObjectStoreX.new!(:s3, Keyword.put(TestBackends.store_opts(:s3), :prefix, prefix))

      on_exit(fn -> TestBackends.cleanup(store) end)

      env = [
        {"AWS_ACCESS_KEY_ID", "test"},
        {"AWS_SECRET_ACCESS_KEY", @fake_secret},
        {"AWS_ENDPOINT_URL", System.fetch_env!("OBJECTSTOREX_TEST_S3_ENDPOINT")},
        {"AWS_ALLOW_HTTP", "true"},
        {"AWS_REGION", "us-east-1"}
      ]

      %{url: "s3://#{bucket}/#{prefix}", env: env, store: store}
    end

    test "cp both ways, recursive, ls, cat, rm; the secret never printed", %{
      dir: dir,
      url: url,
      env: env,
      store: store
    } do
      data = write!(Path.join(dir, "a.bin"), random_bytes(12 * @mib + 5))
      small = write!(Path.join(dir, "tree/sub/bin.bin"), <<0, 200, 255, 10, 13, 0xC3, 0x28>>)
      write!(Path.join(dir, "tree/top.txt"), "top")
      outputs = []

      {out, status} =
        mix(
          [
            "do",
            "objectstorex.cp",
            "--checksum",
            "sha256",
            "--part-size",
            "5MiB",
            "--concurrency",
            "2",
            Path.join(dir, "a.bin"),
            "#{url}/a.bin,",
            "objectstorex.cp",
            "-r",
            Path.join(dir, "tree"),
            "#{url}/tree/,",
            "objectstorex.ls",
            "-r",
            "--long",
            "#{url}/,",
            "objectstorex.cp",
            "--checksum",
            "sha256",
            "#{url}/a.bin",
            "memory://s3copy.bin,",
            "objectstorex.cp",
            "--checksum",
            "sha256",
            "memory://s3copy.bin",
            Path.join(dir, "back.bin")
          ],
          env
        )

      outputs = [out | outputs]
      assert status == 0, out
      # upload, S3 -> memory (transfer/5), memory -> file: the same digest three times
      assert length(Regex.scan(~r/sha256 #{sha256(data)}/, out)) == 3
      assert out =~ "copied 2 objects, 10 bytes"
      assert out =~ ~r/^\s+#{byte_size(data)}  \S+Z  .*\/a\.bin$/m
      assert out =~ ~r/^\s+7  \S+Z  .*\/tree\/sub\/bin\.bin$/m
      assert File.read!(Path.join(dir, "back.bin")) == data
      assert {:ok, ^data, _} = ObjectStoreX.get(store, "a.bin")

      {bytes, 0} =
        mix(["objectstorex.cat", "#{url}/tree/sub/bin.bin"], env, stderr_to_stdout: false)

      assert bytes == small

      {out, status} = mix(["objectstorex.cp", "#{url}/missing.bin", Path.join(dir, "m.bin")], env)
      outputs = [out | outputs]
      assert status != 0
      assert out =~ "not found"
      refute File.exists?(Path.join(dir, "m.bin"))

      {out, status} = mix(["objectstorex.ls", "s3://objx-no-such-bucket/"], env)
      outputs = [out | outputs]
      assert status != 0
      assert out =~ "NoSuchBucket"

      {out, 0} = mix(["objectstorex.rm", "--recursive", "#{url}/"], env)
      outputs = [out | outputs]
      assert out =~ "removed 3 objects"
      assert {:ok, []} = ObjectStoreX.list(store)

      for out <- outputs, do: refute(out =~ @fake_secret)
    end

    test "sign prints URLs that work for GET and PUT", %{
      dir: dir,
      url: url,
      env: env,
      store: store
    } do
      env = List.keyreplace(env, "AWS_SECRET_ACCESS_KEY", 0, {"AWS_SECRET_ACCESS_KEY", "test"})
      :ok = ObjectStoreX.put(store, "signed.txt", "presigned body")

      {out, 0} =
        mix(
          [
            "do",
            "objectstorex.sign",
            "#{url}/signed.txt",
            "--expires",
            "300,",
            "objectstorex.sign",
            "--method",
            "put",
            "#{url}/uploaded.txt"
          ],
          env
        )

      [get_url, put_url] = String.split(out, "\n", trim: true)
      assert get_url =~ "X-Amz-Expires=300"
      assert {200, _, "presigned body"} = http_request(:get, get_url)

      assert {200, _, _} =
               http_request(:put, put_url, [{"content-type", "text/plain"}], "sent by curl")

      assert {:ok, "sent by curl", _} = ObjectStoreX.get(store, "uploaded.txt")
      _ = dir
    end
  end

  describe "Azure" do
    @describetag backend: :azure

    test "cp, ls, sign, cat and rm against Azurite, credentials from the environment", %{dir: dir} do
      container = System.fetch_env!("OBJECTSTOREX_TEST_AZURE_CONTAINER")
      prefix = TestBackends.unique_prefix("cli")
      url = "az://#{container}/#{prefix}"
      endpoint = URI.parse(System.fetch_env!("OBJECTSTOREX_TEST_AZURE_ENDPOINT"))
      azurite = "http://#{endpoint.host}:#{endpoint.port}"
      env = [{"AZURE_STORAGE_USE_EMULATOR", "true"}, {"AZURITE_BLOB_STORAGE_URL", azurite}]
      data = write!(Path.join(dir, "a.bin"), random_bytes(6 * @mib))

      store =
        ObjectStoreX.new!(:azure, Keyword.put(TestBackends.store_opts(:azure), :prefix, prefix))

      on_exit(fn -> TestBackends.cleanup(store) end)

      {out, status} =
        mix(
          [
            "do",
            "objectstorex.cp",
            "--checksum",
            "md5",
            Path.join(dir, "a.bin"),
            "#{url}/a.bin,",
            "objectstorex.ls",
            "#{url}/,",
            "objectstorex.sign",
            "#{url}/a.bin,",
            "objectstorex.cp",
            "#{url}/a.bin",
            Path.join(dir, "back.bin")
          ],
          env
        )

      assert status == 0, out
      assert out =~ "md5 #{:crypto.hash(:md5, data) |> Base.encode16(case: :lower)}"
      assert out =~ ~r/^a\.bin$/m
      assert File.read!(Path.join(dir, "back.bin")) == data
      [signed] = Regex.run(~r/^http:\/\/\S+a\.bin\?\S+$/m, out)
      assert {200, _, ^data} = http_request(:get, signed)

      {out, 0} = mix(["objectstorex.rm", "-r", "#{url}/"], env)
      assert out =~ "removed 1 object under"
      assert {:ok, []} = ObjectStoreX.list(store)
    end
  end

  describe "WebDAV" do
    @describetag backend: :webdav

    test "cp there and back, ls and rm over plain HTTP", %{dir: dir} do
      url =
        "#{System.fetch_env!("OBJECTSTOREX_TEST_WEBDAV_URL")}/#{TestBackends.unique_prefix("cli")}"

      data = write!(Path.join(dir, "w.bin"), random_bytes(300_000))

      {out, status} =
        mix([
          "do",
          "objectstorex.cp",
          Path.join(dir, "w.bin"),
          "#{url}/d/w.bin,",
          "objectstorex.ls",
          "--recursive",
          "#{url}/,",
          "objectstorex.cp",
          "#{url}/d/w.bin",
          Path.join(dir, "back.bin") <> ",",
          "objectstorex.rm",
          "--recursive",
          "#{url}/"
        ])

      assert status == 0, out
      assert out =~ ~r/^objx-cli-\S+\/d\/w\.bin$/m
      assert File.read!(Path.join(dir, "back.bin")) == data
      assert out =~ "removed 1 object under"
    end
  end
end
